import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { AddressError, parseSubnet, subnetContains, subnetOf } from "../../../src/net/cidr.ts";
import type { NodeReach, PortState, VipPlacement } from "../../../src/net/model.ts";
import { planPortBalance } from "../../../src/net/port-balance.ts";
import { planPortFailover } from "../../../src/net/port-failover.ts";
import { planStoragePathMoves } from "../../../src/net/storage-path.ts";
import { planSubnetRoutes, subnetRoutesOf } from "../../../src/net/subnet-route.ts";

const A = "10.7.1.0/24";
const B = "10.7.2.0/24";
const port = (
  nodeId: string,
  name: string,
  subnet: string | null,
  up = true,
  load = 0,
  linkUp = up,
): PortState => ({
  nodeId,
  name,
  subnet,
  up,
  linkUp,
  // n<i>'s port on 10.7.<k>.0/24 is 10.7.<k>.1<i>.
  address: subnet === null ? null : subnet.replace(/0\/24$/, `1${nodeId.slice(1)}`),
  loadBytesPerSec: load,
});
const vip = (
  address: string,
  vserverId: string,
  nodeId: string,
  p: string | null,
  load = 0,
): VipPlacement => ({
  vip: address,
  vserverId,
  nodeId,
  port: p,
  loadBytesPerSec: load,
});

describe("cidr", () => {
  it("parses, normalizes and tests membership", () => {
    assert.equal(parseSubnet("10.7.1.9/24").text, A);
    assert.equal(subnetContains(parseSubnet(A), "10.7.1.200"), true);
    assert.equal(subnetContains(parseSubnet(A), "10.7.2.1"), false);
    assert.equal(subnetOf("10.7.2.5", [A, B]), B);
    assert.throws(() => parseSubnet("10.7.1.0"), AddressError);
    assert.throws(() => parseSubnet("10.7.300.0/24"), AddressError);
    assert.throws(() => parseSubnet("10.7.1.0/33"), AddressError);
  });
});

describe("port failover", () => {
  it("moves a dead port's VIPs to a good port of the same node, its own subnet first", () => {
    const ports = [
      port("n1", "eth0", A, false),
      port("n1", "eth1", B, true, 0),
      port("n1", "eth2", A, true, 5e6),
    ];
    const actions = planPortFailover(ports, [vip("10.7.1.50", "vs1", "n1", "eth0")]);
    assert.deepEqual(
      actions.map((a) => (a.kind === "move-vip" ? [a.vip, a.toPort] : a.kind)),
      [["10.7.1.50", "eth2"]],
      "the busier port on the VIP's subnet beats an idle one on another subnet",
    );
  });

  it("never puts a VIP on a port of another subnet: the vserver moves instead", () => {
    const ports = [port("n1", "eth0", A, false), port("n1", "eth1", B), port("n2", "eth0", A)];
    const actions = planPortFailover(ports, [vip("10.7.1.50", "vs1", "n1", "eth0")]);
    assert.deepEqual(
      actions.map((a) => a.kind),
      ["move-vserver"],
    );
  });

  it("spreads a dead port's VIPs over the good ports by load", () => {
    const ports = [port("n1", "eth0", A, false), port("n1", "eth1", A), port("n1", "eth2", A)];
    const vips = [1, 2, 3, 4].map((i) => vip(`10.7.1.5${i}`, `vs${i}`, "n1", "eth0", 1000 * i));
    const to = planPortFailover(ports, vips).map((a) => (a.kind === "move-vip" ? a.toPort : "?"));
    assert.equal(to.filter((p) => p === "eth1").length, 2);
    assert.equal(to.filter((p) => p === "eth2").length, 2);
  });

  it("with no good port, moves the vserver with all its VIPs to another node", () => {
    const ports = [port("n1", "eth0", A, false), port("n1", "eth1", B, false), port("n2", "eth0", A)];
    const vips = [vip("10.7.1.50", "vs1", "n1", "eth0"), vip("10.7.2.50", "vs1", "n1", "eth1")];
    const actions = planPortFailover(ports, vips);
    assert.deepEqual(
      actions.map((a) => a.kind),
      ["move-vserver"],
    );
    assert.equal(actions[0]?.kind === "move-vserver" && actions[0].vserverId, "vs1");
  });

  it("leaves VIPs on good ports alone (property: only stranded VIPs move, only to good ports of their node)", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            node: fc.integer({ min: 1, max: 3 }),
            idx: fc.integer({ min: 0, max: 2 }),
            up: fc.boolean(),
          }),
          {
            maxLength: 9,
          },
        ),
        fc.array(
          fc.record({
            node: fc.integer({ min: 1, max: 3 }),
            idx: fc.integer({ min: 0, max: 2 }),
            host: fc.integer({ min: 50, max: 99 }),
          }),
          {
            maxLength: 12,
          },
        ),
        (portSpecs, vipSpecs) => {
          const ports = new Map<string, PortState>();
          for (const p of portSpecs)
            ports.set(`n${p.node}/eth${p.idx}`, port(`n${p.node}`, `eth${p.idx}`, p.idx === 1 ? B : A, p.up));
          const seen = new Set<string>();
          const vips = vipSpecs
            .filter((v) => !seen.has(`${v.host}`) && seen.add(`${v.host}`))
            .map((v, i) => vip(`10.7.1.${v.host}`, `vs${i}`, `n${v.node}`, `eth${v.idx}`));
          for (const a of planPortFailover([...ports.values()], vips)) {
            if (a.kind !== "move-vip") continue;
            const from = vips.find((v) => v.vip === a.vip)!;
            assert.notEqual(ports.get(`${from.nodeId}/${from.port}`)?.up, true, "a VIP on a good port stays");
            assert.equal(ports.get(`${a.nodeId}/${a.toPort}`)?.up, true, "only onto a good port");
            assert.equal(a.nodeId, from.nodeId, "on the same node");
            if ([...ports.values()].some((p) => p.subnet === A))
              assert.equal(ports.get(`${a.nodeId}/${a.toPort}`)?.subnet, A, "on the VIP's subnet");
          }
        },
      ),
    );
  });
});

describe("storage path loss", () => {
  const nodes: NodeReach[] = [
    { nodeId: "n1", live: true, clientSubnets: [A], storageServers: ["s2"] },
    { nodeId: "n2", live: true, clientSubnets: [A], storageServers: ["s1", "s2"] },
    { nodeId: "n3", live: false, clientSubnets: [A], storageServers: ["s1", "s2"] },
  ];
  it("moves a vserver whose node lost a storage server to a live node reaching them all", () => {
    const actions = planStoragePathMoves(nodes, [
      { vserverId: "vs1", nodeId: "n1", pinned: false, servers: ["s1", "s2"] },
      { vserverId: "vs2", nodeId: "n1", pinned: false, servers: ["s2"] },
    ]);
    assert.deepEqual(
      actions.map((a) => (a.kind === "move-vserver" ? [a.vserverId, a.toNode] : a.kind)),
      [["vs1", "n2"]],
    );
  });
  it("keeps a pinned vserver, and says why when nowhere reaches its servers", () => {
    const actions = planStoragePathMoves(nodes, [
      { vserverId: "vs1", nodeId: "n1", pinned: true, servers: ["s1"] },
      { vserverId: "vs2", nodeId: "n1", pinned: false, servers: ["s9"] },
    ]);
    assert.deepEqual(
      actions.map((a) => a.kind),
      ["stay", "stay"],
    );
    assert.match(actions[0]?.kind === "stay" ? actions[0].reason : "", /pinned/);
    assert.match(actions[1]?.kind === "stay" ? actions[1].reason : "", /no live node reaches/);
  });
});

describe("subnet routes", () => {
  it("routes a VIP through a node that still reaches the client's subnet and the owner over another", () => {
    const nodes: NodeReach[] = [
      { nodeId: "n1", live: true, clientSubnets: [B], storageServers: [] },
      { nodeId: "n2", live: true, clientSubnets: [A, B], storageServers: [] },
      { nodeId: "n3", live: true, clientSubnets: [A, B], storageServers: [] },
    ];
    const ports = [
      port("n1", "eth0", A, false, 0, true),
      port("n1", "eth1", B),
      port("n2", "eth0", A),
      port("n2", "eth1", B),
      port("n3", "eth0", A),
      port("n3", "eth1", B),
    ];
    const actions = planSubnetRoutes(nodes, ports, [
      vip("10.7.1.50", "vs1", "n1", "eth0"),
      vip("10.7.1.51", "vs2", "n1", "eth0"),
      vip("10.7.2.50", "vs1", "n1", "eth1"),
    ]);
    assert.deepEqual(actions[0], {
      kind: "route-through",
      vip: "10.7.1.50",
      vserverId: "vs1",
      subnet: A,
      routerNode: "n2",
      routerPort: "eth0",
      routerViaPort: "eth1",
      routerAddress: "10.7.2.12",
      ownerNode: "n1",
      ownerViaPort: "eth1",
      ownerAddress: "10.7.2.11",
      viaSubnet: B,
      reason: `n1 no longer reaches clients on ${A}; n2 does and forwards over ${B}`,
    });
    assert.equal(actions.length, 2, "the VIP on B needs no route");
    assert.equal(actions[1]?.kind === "route-through" ? actions[1].routerNode : "", "n3", "routes spread");
  });
  it("keeps a route in place while it works, whatever the loads; re-plans it when its router port dies", () => {
    const nodes: NodeReach[] = [
      { nodeId: "n1", live: true, clientSubnets: [B], storageServers: [] },
      { nodeId: "n2", live: true, clientSubnets: [A, B], storageServers: [] },
      { nodeId: "n3", live: true, clientSubnets: [A, B], storageServers: [] },
    ];
    const ports = (n2Eth0Load: number, n2Eth2Up = true) => [
      port("n1", "eth0", A, false, 0, true),
      port("n1", "eth1", B),
      port("n2", "eth0", A, true, n2Eth0Load),
      port("n2", "eth2", A, n2Eth2Up, 0),
      port("n2", "eth1", B),
      port("n3", "eth0", A, true, 50),
      port("n3", "eth1", B),
    ];
    const vips = [vip("10.7.1.50", "vs1", "n1", "eth0")];
    const first = subnetRoutesOf(planSubnetRoutes(nodes, ports(100), vips));
    assert.equal(first[0]?.routerPort, "eth2", "the cooler port first");
    const later = subnetRoutesOf(planSubnetRoutes(nodes, ports(0).reverse(), vips, first));
    assert.deepEqual(later, first, "eth0 is cooler now, but the route stays as it is");
    const moved = subnetRoutesOf(planSubnetRoutes(nodes, ports(0, false), vips, first));
    assert.equal(moved.length, 1);
    assert.notDeepEqual(
      [moved[0]?.routerNode, moved[0]?.routerPort],
      ["n2", "eth2"],
      "a route whose router port died is planned again",
    );
    assert.deepEqual(
      subnetRoutesOf(
        planSubnetRoutes(
          nodes.map((n) => (n.nodeId === "n1" ? { ...n, clientSubnets: [A, B] } : n)),
          ports(0).map((p) => (p.nodeId === "n1" ? { ...p, up: true } : p)),
          vips,
          first,
        ),
      ),
      [],
      "a route the owner no longer needs goes",
    );
  });
  it("plans no route for a port with no link: that is a port failure, and the vserver moves", () => {
    const nodes: NodeReach[] = [
      { nodeId: "n1", live: true, clientSubnets: [B], storageServers: [] },
      { nodeId: "n2", live: true, clientSubnets: [A, B], storageServers: [] },
    ];
    const ports = [
      port("n1", "eth0", A, false),
      port("n1", "eth1", B),
      port("n2", "eth0", A),
      port("n2", "eth1", B),
    ];
    assert.deepEqual(planSubnetRoutes(nodes, ports, [vip("10.7.1.50", "vs1", "n1", "eth0")]), []);
  });
  it("stays, saying why, when no node has a path to the owner", () => {
    const nodes: NodeReach[] = [
      { nodeId: "n1", live: true, clientSubnets: [], storageServers: [] },
      { nodeId: "n2", live: true, clientSubnets: [A], storageServers: [] },
    ];
    const actions = planSubnetRoutes(
      nodes,
      [port("n1", "eth0", A, false, 0, true), port("n2", "eth0", A)],
      [vip("10.7.1.50", "vs1", "n1", "eth0")],
    );
    assert.deepEqual(
      actions.map((a) => a.kind),
      ["stay"],
    );
  });
  it("never routes through the owner itself or a node without a good port on the client's subnet", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.boolean(), fc.boolean(), fc.boolean()), { minLength: 2, maxLength: 5 }),
        (shape) => {
          const ids = shape.map((_, i) => `n${i + 1}`);
          const ports = shape.flatMap(([aUp, aLink, bUp], i) => [
            port(ids[i]!, "eth0", A, aUp && aLink, 0, aLink),
            port(ids[i]!, "eth1", B, bUp),
          ]);
          const nodes: NodeReach[] = shape.map(([aUp, aLink, bUp], i) => ({
            nodeId: ids[i]!,
            live: true,
            clientSubnets: [...(aUp && aLink ? [A] : []), ...(bUp ? [B] : [])],
            storageServers: [],
          }));
          const actions = planSubnetRoutes(nodes, ports, [vip("10.7.1.50", "vs1", "n1", "eth0")]);
          for (const a of actions) {
            if (a.kind !== "route-through") continue;
            assert.notEqual(a.routerNode, a.ownerNode);
            assert.ok(ports.some((p) => p.nodeId === a.routerNode && p.name === a.routerPort && p.up));
            assert.ok(ports.some((p) => p.nodeId === a.ownerNode && p.name === a.ownerViaPort && p.up));
          }
        },
      ),
    );
  });
});

describe("port balancing", () => {
  const MB = 1024 * 1024;
  it("spreads a hot port's VIPs over the node's other ports on that subnet", () => {
    const ports = [
      port("n1", "eth0", A, true, 40 * MB),
      port("n1", "eth2", A, true, 0),
      port("n1", "eth1", B, true, 0),
    ];
    const vips = [1, 2, 3, 4].map((i) => vip(`10.7.1.5${i}`, `vs${i}`, "n1", "eth0", 10 * MB));
    const actions = planPortBalance("n1", ports, vips);
    assert.deepEqual(
      actions.map((a) => (a.kind === "move-vip" ? [a.fromPort, a.toPort] : a.kind)),
      [
        ["eth0", "eth2"],
        ["eth0", "eth2"],
      ],
    );
  });
  it("leaves a VIP that carries nearly all of its port's load: moving it would only swap the ports", () => {
    const ports = [port("n1", "eth0", A, true, 10 * MB), port("n1", "eth2", A, true, 0)];
    assert.deepEqual(
      planPortBalance("n1", ports, [vip("10.7.1.51", "vs1", "n1", "eth0", 10 * MB - 1000)]),
      [],
    );
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 6 }),
        fc.integer({ min: 0, max: 50 }),
        (loads, coolMb) => {
          const hot = loads.reduce((a, b) => a + b, 0) * MB;
          const vips = loads.map((l, i) => vip(`10.7.1.${60 + i}`, `vs${i}`, "n1", "eth0", l * MB));
          const plan = planPortBalance(
            "n1",
            [port("n1", "eth0", A, true, hot), port("n1", "eth2", A, true, coolMb * MB)],
            vips,
          );
          // Whatever moves, the busier port after the plan carries less than the hot one did.
          const moved = new Set(plan.map((a) => (a.kind === "move-vip" ? a.vip : "")));
          const left = vips.filter((v) => !moved.has(v.vip)).reduce((a, v) => a + v.loadBytesPerSec, 0);
          const cool =
            coolMb * MB + vips.filter((v) => moved.has(v.vip)).reduce((a, v) => a + v.loadBytesPerSec, 0);
          if (plan.length > 0) assert.ok(Math.max(left, cool) < hot, `${left} ${cool} of ${hot}`);
        },
      ),
    );
  });
  it("does nothing inside the dead-band, below the floor, or with one port", () => {
    const vips = [
      vip("10.7.1.51", "vs1", "n1", "eth0", 10 * MB),
      vip("10.7.1.52", "vs2", "n1", "eth2", 8 * MB),
    ];
    assert.deepEqual(
      planPortBalance(
        "n1",
        [port("n1", "eth0", A, true, 10 * MB), port("n1", "eth2", A, true, 8 * MB)],
        vips,
      ),
      [],
    );
    assert.deepEqual(
      planPortBalance("n1", [port("n1", "eth0", A, true, 1000), port("n1", "eth2", A, true, 0)], vips),
      [],
    );
    assert.deepEqual(planPortBalance("n1", [port("n1", "eth0", A, true, 50 * MB)], vips), []);
  });
});
