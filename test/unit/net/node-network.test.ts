import assert from "node:assert/strict";
import { test } from "node:test";
import { pino } from "pino";
import { NodeNetwork } from "../../../src/net/node-network.ts";
import type { PortReading } from "../../../src/net/port-monitor.ts";
import { StorageReach } from "../../../src/net/storage-reach.ts";
import type { TcpConnection } from "../../../src/net/tcp-connections.ts";
import type { VipDriver } from "../../../src/net/vip-driver.ts";

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
  async connections(vip: string) {
    return {
      connections: [{ local: { ip: vip, port: 2049 }, remote: { ip: "10.7.1.201", port: 900 } }],
      omittedCount: 0,
    };
  }
  async tickle(vip: string, connections: readonly TcpConnection[]): Promise<void> {
    this.tickled.push({ vip, connections });
  }
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
  const links = new Map([
    ["eth0", true],
    ["eth2", true],
    ["eth1", true],
  ]);
  const driver = new RecordingDriver();
  const { net, published, tick } = await network(links, driver);
  await net.hold("vs1", ["10.7.1.50", "10.7.2.50"]);
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

test("the next holder tickles the connections the previous one published, unless tickles are off", async () => {
  const links = new Map([
    ["eth0", true],
    ["eth2", true],
    ["eth1", true],
  ]);
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
  assert.equal(quiet.tickled.length, 0);
  await off.net.close();
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
