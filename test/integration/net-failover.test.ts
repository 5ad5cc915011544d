/**
 * The real network, end to end: three `flotilla node` processes, each in its own network namespace
 * with two ports on each client subnet (eth0 and eth2 on A, eth1 and eth3 on B), a cluster port for
 * etcd and a storage port; etcd and two storage servers on this host, linked into the lab; the libnfs
 * failover writer (FILE_SYNC writes, auto-reconnect) in a client namespace on subnet A. VIPs are
 * addresses on the nodes' ports (the Linux VIP driver: ip addr add and gratuitous ARP). Faults are
 * the lab's:
 * - port down with a good port left: the VIPs go to the node's other port on subnet A, the vserver
 *   stays; the client's longest gap is printed (goal 0.5 s);
 * - both subnet-A ports down: the node no longer reaches the VIPs' subnet, and the master moves the
 *   vserver to a node that does;
 * - storage cut: the node cannot reach the storage servers, and the master moves the vserver to a
 *   node that can;
 * - subnet A cut off from the serving node (its ports keep their link; the switch stops passing
 *   them): its ARP probes go unanswered, the master routes the VIPs through another node (proxy ARP
 *   there, forwarding over subnet B), and the vserver stays; the route goes when the subnet returns.
 * - port balancing: both VIPs busy on one port of subnet A; the node moves one to its idle port.
 * Every acknowledged block reads back after each.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { etcdSkipReason } from "../support/etcd-process.ts";
import { writerRound } from "../support/failover-round.ts";
import { LAB_VSERVER, LabCluster } from "../support/lab-cluster.ts";
import { labSkipReason } from "../support/lab-skip.ts";
import { until } from "../support/until.ts";

const TAG = `f${(process.pid % 10_000).toString(36)}`;

function skipReason(): string | undefined {
  return labSkipReason("network failover tests", ["arping"], etcdSkipReason);
}

let net: LabCluster;

/** Until the node publishes both VIPs on a port (a VIP being placed shows no port yet). */
function vipsOnPorts(nodeId: string): Promise<true> {
  return until("the VIPs on ports", async () => {
    const ports = await net.vipPortsOf(nodeId);
    return ports.size === 2 && [...ports.values()].every((p) => p !== null) ? true : undefined;
  });
}

describe("network faults on a cluster of processes in a lab", {
  skip: skipReason(),
  timeout: 600_000,
}, () => {
  before(async () => {
    net = await LabCluster.start({ tag: TAG });
  });

  after(async () => {
    await net?.close();
  });

  test("a port down with a good port left on its subnet: the VIPs move to it, the vserver stays", async (t) => {
    const on = await net.cluster.servedBy(LAB_VSERVER);
    await vipsOnPorts(on);
    const before = await net.vipPortsOf(on);
    const port = before.get(net.vips[0]!)!;
    assert.ok(port === "eth0" || port === "eth2", `on a subnet-A port: ${port}`);
    const other = port === "eth0" ? "eth2" : "eth0";
    const round = await writerRound(
      net.cluster,
      {
        writer: net.writer,
        vserverId: LAB_VSERVER,
        url: net.url,
        file: "/port",
        seconds: 6,
        killAfterMs: 2000,
        blockBytes: 65536,
        namespace: net.client,
      },
      async (from) => {
        await net.lab.fault({ kind: "port-down", node: from, port });
        await until("the VIP on the other port", async () =>
          (await net.vipPortsOf(from)).get(net.vips[0]!) === other ? true : undefined,
        );
        return { takenOverBy: from };
      },
    );
    t.diagnostic(
      `port ${port} down on ${on}: VIPs moved to ${other}; client's longest gap ${Math.round(round.stallMs)} ms, ${round.acked} blocks verified`,
    );
    assert.equal(await net.cluster.servedBy(LAB_VSERVER), on, "the vserver did not move");
    assert.equal(round.verified, round.acked, `blocks lost or damaged: ${round.badBlocks.join(", ")}`);
    assert.ok(round.acked > 20);
    // Generous for a loaded CI machine; the goal (0.5 s) is bench:net's.
    assert.ok(round.stallMs < 5000, `the client stalled ${round.stallMs} ms:\n${round.writerOutput}`);
    await net.lab.fault({ kind: "heal" });
  });

  test("port balancing: with both VIPs busy on one port, one moves to the node's idle port on the subnet", async (t) => {
    const on = await net.cluster.servedBy(LAB_VSERVER);
    await vipsOnPorts(on);
    const start = await net.vipPortsOf(on);
    const [a, b] = net.vips as [string, string];
    if (start.get(a) !== start.get(b)) {
      // Put them on one port as a node would after a restart: the other port down, then back.
      const other = start.get(a) === "eth0" ? "eth0" : "eth2";
      await net.lab.fault({ kind: "port-down", node: on, port: other });
      await until("both VIPs on one port", async () => {
        const ports = await net.vipPortsOf(on);
        return ports.get(a) === ports.get(b) ? true : undefined;
      });
      await net.lab.fault({ kind: "heal" });
    }
    const shared = (await net.vipPortsOf(on)).get(a);
    const startedAt = performance.now();
    const spread = until(
      "the VIPs on two ports",
      async () => {
        const ports = await net.vipPortsOf(on);
        return ports.get(a) !== ports.get(b) ? { ports, atMs: performance.now() } : undefined;
      },
      40_000,
    );
    const round = (vip: string, file: string) =>
      writerRound(
        net.cluster,
        {
          writer: net.writer,
          vserverId: LAB_VSERVER,
          url: net.url.replace(a, vip),
          file,
          seconds: 25,
          killAfterMs: 1000,
          blockBytes: 65536,
          namespace: net.client,
        },
        async () => {
          await spread;
          return { takenOverBy: on };
        },
      );
    const [first, second] = await Promise.all([round(a, "/balance-a"), round(b, "/balance-b")]);
    const { ports: after, atMs } = await spread;
    t.diagnostic(
      `both VIPs on ${shared} of ${on}; spread to ${after.get(a)} and ${after.get(b)} ${((atMs - startedAt) / 1000).toFixed(1)} s into the load; longest gaps ${Math.round(first.stallMs)} and ${Math.round(second.stallMs)} ms`,
    );
    assert.equal(await net.cluster.servedBy(LAB_VSERVER), on, "the vserver did not move");
    for (const r of [first, second]) {
      assert.equal(r.verified, r.acked, `blocks lost or damaged: ${r.badBlocks.join(", ")}`);
      assert.ok(r.acked > 20);
    }
  });

  /** A fault on the serving node under the writer; the vserver must end up on another node. */
  async function moveRound(
    t: { diagnostic(message: string): void },
    what: string,
    file: string,
    fault: (node: string) => Promise<void>,
  ): Promise<void> {
    const on = await net.cluster.servedBy(LAB_VSERVER);
    const round = await writerRound(
      net.cluster,
      {
        writer: net.writer,
        vserverId: LAB_VSERVER,
        url: net.url,
        file,
        seconds: 20,
        killAfterMs: 2000,
        blockBytes: 65536,
        namespace: net.client,
      },
      async (from) => {
        await fault(from);
        return { takenOverBy: await net.cluster.servedBy(LAB_VSERVER, from, 90_000) };
      },
    );
    t.diagnostic(
      `${what} on ${on}: vserver moved to ${round.takenOverBy}; client's longest gap ${Math.round(round.stallMs)} ms, ${round.acked} blocks verified`,
    );
    assert.notEqual(round.takenOverBy, on);
    assert.equal((await net.cluster.snapshot()).placements.get(LAB_VSERVER)?.record.node, round.takenOverBy);
    assert.equal(round.verified, round.acked, `blocks lost or damaged: ${round.badBlocks.join(", ")}`);
    await net.lab.fault({ kind: "heal" });
  }

  test("both ports on the VIPs' subnet down: the vserver moves to a node that reaches the subnet", (t) =>
    moveRound(t, "eth0 and eth2 down", "/subnet-ports", async (node) => {
      await net.lab.fault({ kind: "port-down", node, port: "eth0" });
      await net.lab.fault({ kind: "port-down", node, port: "eth2" });
    }));

  test("a storage cut: the vserver moves to a node that reaches the storage servers", (t) =>
    moveRound(t, "storage cut", "/storage", (node) => net.lab.fault({ kind: "storage-cut", node })));

  test("subnet A cut off from the serving node: another node answers for the VIPs and forwards, the vserver stays", async (t) => {
    const on = await net.cluster.servedBy(LAB_VSERVER);
    let routers: string[] = [];
    const round = await writerRound(
      net.cluster,
      {
        writer: net.writer,
        vserverId: LAB_VSERVER,
        url: net.url,
        file: "/subnet-cut",
        seconds: 12,
        killAfterMs: 2000,
        blockBytes: 65536,
        namespace: net.client,
      },
      async (from) => {
        await net.lab.fault({ kind: "subnet-down", node: from, subnet: "A" });
        const routes = await until(
          "both VIPs routed through another node",
          async () => {
            const routes = [...(await net.cluster.snapshot()).routes.values()].map((v) => v.record);
            return routes.length === net.vips.length ? routes : undefined;
          },
          30_000,
        );
        routers = routes.map((r) => r.routerNode);
        for (const r of routes) assert.equal(r.ownerNode, from);
        return { takenOverBy: from };
      },
    );
    t.diagnostic(
      `subnet A cut off from ${on}: VIPs answered by ${routers.join(", ")}; client's longest gap ${Math.round(round.stallMs)} ms, ${round.acked} blocks verified through the router`,
    );
    assert.ok(routers.every((r) => r !== on));
    assert.equal(await net.cluster.servedBy(LAB_VSERVER), on, "the vserver did not move");
    assert.equal(round.verified, round.acked, `blocks lost or damaged: ${round.badBlocks.join(", ")}`);
    assert.ok(round.acked > 20);
    await net.lab.fault({ kind: "subnet-up", node: on, subnet: "A" });
    await until(
      "the routes gone once the subnet answers again",
      async () => ((await net.cluster.snapshot()).routes.size === 0 ? true : undefined),
      30_000,
    );
    await net.lab.fault({ kind: "heal" });
  });
});
