import assert from "node:assert/strict";
import { test } from "node:test";
import { pino } from "pino";
import type { SubnetRoute } from "../../../src/net/model.ts";
import { NodeNetwork } from "../../../src/net/node-network.ts";
import type { PortReading } from "../../../src/net/port-monitor.ts";
import { StorageReach } from "../../../src/net/storage-reach.ts";
import type { ArpProber } from "../../../src/net/subnet-probe.ts";
import type { TcpConnection } from "../../../src/net/tcp-connections.ts";
import type { VipDriver } from "../../../src/net/vip-driver.ts";
import { subnetRoute } from "../../support/subnet-route.ts";

const A = "10.7.1.0/24";
const B = "10.7.2.0/24";

/** A driver that records what it is asked, as the Linux one would do it. */
class RecordingDriver implements VipDriver {
  readonly kind = "linux";
  readonly where = new Map<string, string>();
  readonly tickled: { vip: string; connections: readonly TcpConnection[] }[] = [];
  async hold(vip: string, port: string | null): Promise<void> {
    this.where.set(vip, port ?? "?");
  }
  async release(vip: string): Promise<void> {
    this.where.delete(vip);
  }
  readonly prepared: string[] = [];
  async preparePorts(ports: readonly string[]): Promise<void> {
    this.prepared.push(...ports);
  }
  async connections(vip: string) {
    return {
      connections: [{ local: { ip: vip, port: 2049 }, remote: { ip: "10.7.1.201", port: 900 } }],
      omittedCount: 0,
    };
  }
  async tickle(vip: string, connections: readonly TcpConnection[]): Promise<void> {
    this.tickled.push({ vip, connections });
  }
  /** Route calls in order: "forward 10.7.1.50", "unforward ...", "reply ...", "unreply ...", "announce VIP PORT". */
  readonly routeCalls: string[] = [];
  async announce(vip: string, port: string): Promise<void> {
    this.routeCalls.push(`announce ${vip} ${port}`);
  }
  async forwardFor(route: SubnetRoute): Promise<void> {
    this.routeCalls.push(`forward ${route.vip}`);
  }
  async stopForwardingFor(route: SubnetRoute): Promise<void> {
    this.routeCalls.push(`unforward ${route.vip}`);
  }
  async replyVia(route: SubnetRoute): Promise<void> {
    this.routeCalls.push(`reply ${route.vip}`);
  }
  async stopReplyingVia(route: SubnetRoute): Promise<void> {
    this.routeCalls.push(`unreply ${route.vip}`);
  }
}

/** Link on every port of the test node. */
function allLinksUp(): Map<string, boolean> {
  return new Map([
    ["eth0", true],
    ["eth2", true],
    ["eth1", true],
  ]);
}

async function network(links: Map<string, boolean>, driver: RecordingDriver, extra = {}) {
  const published = new Map<string, readonly TcpConnection[]>();
  const net = await NodeNetwork.start({
    nodeId: "n1",
    driver,
    ports: [
      { name: "eth0", subnet: A },
      { name: "eth2", subnet: A },
      { name: "eth1", subnet: B },
    ],
    storageServers: () => [],
    logger: pino({ level: "silent" }),
    intervalMs: 60_000,
    connectionsEveryMs: 0,
    readPort: async (name): Promise<PortReading> => ({ up: links.get(name) ?? false, bytes: 0 }),
    connections: {
      publish: async (id, list) => {
        published.set(id, list);
      },
      previous: async (id) => published.get(id) ?? [],
    },
    ...extra,
  });
  return { net, published, tick: () => net.refresh() };
}

test("VIPs go on a port of their subnet, move to the other one when theirs goes down, and publish their connections", async () => {
  const links = allLinksUp();
  const driver = new RecordingDriver();
  const { net, published, tick } = await network(links, driver);
  await net.hold("vs1", ["10.7.1.50", "10.7.2.50"]);
  assert.deepEqual(driver.prepared, ["eth0", "eth2", "eth1"], "client ports readied for VIPs");
  assert.equal(driver.where.get("10.7.2.50"), "eth1");
  const first = driver.where.get("10.7.1.50");
  assert.ok(first === "eth0" || first === "eth2");
  assert.deepEqual(net.reaches(), [`subnet:${A}`, `subnet:${B}`]);

  links.set(first, false);
  await tick();
  assert.equal(driver.where.get("10.7.1.50"), first === "eth0" ? "eth2" : "eth0");
  assert.equal(net.counters.portMoves, 1);
  assert.equal(net.reachable(["10.7.1.50"]), true);
  assert.equal(published.get("vs1")?.length, 2, "each VIP's connection published");

  links.set("eth0", false);
  links.set("eth2", false);
  await tick();
  assert.equal(net.reachable(["10.7.1.50"]), false, "no good port on A left");
  assert.deepEqual(net.reaches(), [`subnet:${B}`], "the node stops publishing subnet A");
  await net.release(["10.7.1.50", "10.7.2.50"]);
  assert.equal(driver.where.size, 0);
  await net.close();
});

test("a stop publishes its vserver's connections at once, between two periodic reads", async () => {
  const links = allLinksUp();
  const driver = new RecordingDriver();
  const { net, published } = await network(links, driver, { connectionsEveryMs: 3_600_000 });
  await net.hold("vs1", ["10.7.1.50"]);
  await net.hold("vs2", ["10.7.2.50"]);
  await net.refresh();
  assert.equal(published.size, 0, "nothing read yet: the first read came before any VIP was held");
  await net.publishConnectionsOf("vs1");
  assert.deepEqual(
    published.get("vs1")?.map((c) => c.local.ip),
    ["10.7.1.50"],
    "the stopping vserver's own VIPs' connections",
  );
  assert.equal(published.has("vs2"), false, "not another vserver's");
  await net.close();
});

test("the next holder announces its VIPs and tickles the connections the previous one published once it serves, unless tickles are off", async () => {
  const links = allLinksUp();
  const first = new RecordingDriver();
  const old = await network(links, first);
  await old.net.hold("vs1", ["10.7.1.50", "10.7.2.50"]);
  await old.tick();
  const connections = old.published.get("vs1")!;
  await old.net.close();

  const driver = new RecordingDriver();
  const next = await network(links, driver, {
    connections: { publish: async () => {}, previous: async () => connections },
  });
  await next.net.hold("vs1", ["10.7.1.50", "10.7.2.50"]);
  assert.equal(driver.tickled.length, 0, "no tickle before the listeners are up");
  await next.net.serving("vs1", ["10.7.1.50", "10.7.2.50"]);
  assert.deepEqual(
    driver.routeCalls.filter((c) => c.startsWith("announce")).sort(),
    ["10.7.1.50", "10.7.2.50"].map((vip) => `announce ${vip} ${driver.where.get(vip)}`),
    "each new VIP announced once, on the port it is on",
  );
  assert.deepEqual(
    driver.tickled.map((t) => [t.vip, t.connections.map((c) => c.local.ip)]),
    [
      ["10.7.1.50", ["10.7.1.50"]],
      ["10.7.2.50", ["10.7.2.50"]],
    ],
    "each VIP tickles its own connections",
  );
  await next.net.close();

  const quiet = new RecordingDriver();
  const off = await network(links, quiet, {
    tickle: false,
    connections: { publish: async () => {}, previous: async () => connections },
  });
  await off.net.hold("vs1", ["10.7.1.50"]);
  await off.net.serving("vs1", ["10.7.1.50"]);
  assert.equal(quiet.tickled.length, 0);
  await off.net.close();
});

test("a hot port's VIPs spread over the node's other port on the subnet, by measured load", async () => {
  const bytes = new Map([
    ["eth0", 0],
    ["eth2", 0],
    ["eth1", 0],
  ]);
  const vipBytes = new Map([
    ["10.7.1.50", 0],
    ["10.7.1.51", 0],
  ]);
  const driver = new RecordingDriver();
  const { net } = await network(new Map(), driver, {
    balanceEveryMs: 0,
    portBalance: { startRatio: 1.5, stopRatio: 1.2, movesMax: 4, floorBytesPerSec: 1 },
    readPort: async (name: string): Promise<PortReading> => ({ up: true, bytes: bytes.get(name) ?? 0 }),
    vipBytes: () => vipBytes,
  });
  await net.hold("vs1", ["10.7.1.50", "10.7.1.51"]);
  const ports = (): string[] => ["10.7.1.50", "10.7.1.51"].map((v) => driver.where.get(v) ?? "?");
  assert.deepEqual(ports(), ["eth0", "eth0"], "idle ports: both VIPs on the first");
  await net.refresh();
  await new Promise((resolve) => setTimeout(resolve, 20));
  // Both VIPs busy, and all of it through eth0.
  bytes.set("eth0", 2e9);
  vipBytes.set("10.7.1.50", 1e9);
  vipBytes.set("10.7.1.51", 1e9);
  await net.refresh();
  assert.deepEqual(ports().sort(), ["eth0", "eth2"], "one VIP moved to the idle port");
  assert.equal(net.counters.balanceMoves, 1);
  assert.equal(net.counters.portMoves, 0, "a balancing move is not a failover");
  assert.ok(
    net.placements().every((p) => p.loadBytesPerSec > 0),
    "each VIP's load is measured",
  );
  bytes.set("eth0", 4e9);
  await net.refresh();
  assert.equal(net.counters.balanceMoves, 1, "nothing more until the rates show the move");
  await net.close();
});

test("a storage server counts as unreached only after three failed probes in a row", async () => {
  let up = false;
  const reach = new StorageReach(async () => up);
  const targets = [{ serverId: "s1", host: "10.7.9.254", port: 7000 }];
  assert.deepEqual(reach.reached(["s1"]), ["s1"], "not probed yet: no news");
  await reach.probeAll(targets);
  await reach.probeAll(targets);
  assert.deepEqual(reach.reached(["s1"]), ["s1"]);
  await reach.probeAll(targets);
  assert.deepEqual(reach.reached(["s1"]), []);
  up = true;
  await reach.probeAll(targets);
  assert.deepEqual(reach.reached(["s1"]), ["s1"], "one answer brings it back");
});

test("a port with link whose subnet stops answering ARP is cut off: its VIP moves to a port that still answers", async () => {
  const links = allLinksUp();
  // Peers answer on every port but eth0, which a switch stopped passing.
  const asked: string[] = [];
  let switchPassesEth0 = true;
  const arpProbe: ArpProber = async (questions) =>
    questions.map(({ port, target }) => {
      asked.push(`${port}>${target}`);
      return port !== "eth0" || switchPassesEth0;
    });
  const driver = new RecordingDriver();
  const { net, tick } = await network(links, driver, {
    arpProbe,
    subnetProbeEveryMs: 0,
    peerAddresses: (subnet: string) => (subnet === A ? ["10.7.1.12", "10.7.1.13"] : ["10.7.2.12"]),
  });
  await net.hold("vs1", ["10.7.1.50"]);
  if (driver.where.get("10.7.1.50") !== "eth0") {
    // Put it on eth0, the port about to be cut off, by taking eth2's link for a tick.
    links.set("eth2", false);
    await tick();
    links.set("eth2", true);
  }
  assert.equal(driver.where.get("10.7.1.50"), "eth0");
  await net.whenProbed();
  switchPassesEth0 = false;
  await tick();
  await net.whenProbed();
  assert.equal(net.ports().find((p) => p.name === "eth0")?.up, true, "one failed round is not enough");
  await tick();
  await net.whenProbed();
  const eth0 = net.ports().find((p) => p.name === "eth0");
  assert.deepEqual([eth0?.linkUp, eth0?.up], [true, false], "link, but cut off");
  assert.equal(driver.where.get("10.7.1.50"), "eth2", "the VIP left the cut-off port");
  assert.ok(asked.includes("eth0>10.7.1.12") && asked.includes("eth0>10.7.1.13"), "targets taken in turn");
  assert.deepEqual(net.reaches(), [`subnet:${A}`, `subnet:${B}`], "eth2 still reaches A");
  await net.close();
});

test("routes naming the node are applied as router and owner, and taken down when the master drops them", async () => {
  const links = allLinksUp();
  const route = (vip: string, routerNode: string, ownerNode: string): SubnetRoute =>
    subnetRoute({ vip, routerNode, ownerNode });
  let routes: SubnetRoute[] = [];
  const driver = new RecordingDriver();
  const { net } = await network(links, driver, { routes: () => routes });
  await net.hold("vs1", ["10.7.1.51"]);
  await net.serving("vs1", ["10.7.1.51"]);
  driver.routeCalls.length = 0; // the hold's own announcement
  routes = [route("10.7.1.50", "n1", "n2"), route("10.7.1.51", "n3", "n1"), route("10.7.1.52", "n2", "n3")];
  await net.routesChanged();
  await net.routesChanged();
  assert.deepEqual(driver.routeCalls, ["forward 10.7.1.50", "reply 10.7.1.51"], "once each, only its own");
  routes = [];
  await net.routesChanged();
  const port = driver.where.get("10.7.1.51");
  assert.deepEqual(driver.routeCalls.slice(2), [
    "unforward 10.7.1.50",
    "unreply 10.7.1.51",
    `announce 10.7.1.51 ${port}`,
  ]);
  assert.equal(net.counters.routesApplied, 2);
  await net.close();
});
