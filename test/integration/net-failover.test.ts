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
 *   node that can.
 * Every acknowledged block reads back after each.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { labPrerequisiteProblem, NetworkLab } from "../../src/net/lab.ts";
import type { LabTopology } from "../../src/net/lab-topology.ts";
import { etcdSkipReason } from "../support/etcd-process.ts";
import { writerRound } from "../support/failover-round.ts";
import { ProcessCluster } from "../support/process-cluster.ts";
import { until } from "../support/until.ts";
import { buildLibnfsProgram, onPath } from "./tools.ts";

const TAG = `f${(process.pid % 10_000).toString(36)}`;
const NODES = ["n1", "n2", "n3"];
const NFS_PORT = 2049;
const PORTS = { nfs: NFS_PORT, mount: 20_048 };

function skipReason(): string | undefined {
  const problem =
    labPrerequisiteProblem() ??
    etcdSkipReason() ??
    (onPath("arping") ? undefined : "arping is not on PATH (Debian package arping)");
  if (problem === undefined || process.env.CI) return undefined;
  process.stderr.write(`skipping network failover tests: ${problem}\n`);
  return problem;
}

let lab: NetworkLab;
let cluster: ProcessCluster;
let root: string;
let writer: string;
let vips: string[];
let url: string;

function topology(): LabTopology {
  return lab.topology;
}

function nodeConfig(nodeId: string): Record<string, unknown> {
  const node = topology().nodes.find((n) => n.id === nodeId)!;
  const subnetOf = (network: string): string | null =>
    network === "A" || network === "B" ? topology().networks[network].cidr : null;
  return {
    network: {
      driver: "linux",
      ports: node.ports
        .filter((p) => p.network === "A" || p.network === "B")
        .map((p) => ({ name: p.name, subnet: subnetOf(p.network) })),
    },
    liveMove: { host: node.ports.find((p) => p.name === "clu0")!.address },
  };
}

/** Which port of its node each VIP is on, as the node publishes it. */
async function vipPortsOf(nodeId: string): Promise<Map<string, string | null>> {
  const record = (await cluster.snapshot()).nodes.get(nodeId);
  return new Map((record?.vipPorts ?? []).map((v) => [v.vip, v.port]));
}

describe("network faults on a cluster of processes in a lab", {
  skip: skipReason(),
  timeout: 600_000,
}, () => {
  before(async () => {
    root = await mkdtemp(join(tmpdir(), "flotilla-net-e2e-"));
    writer = await buildLibnfsProgram(root, "failover-writer");
    lab = await NetworkLab.up({ tag: TAG, nodes: 3, clients: 1, dualPorts: true, hostLinks: true });
    const host = (network: "cluster" | "storage") =>
      topology().hostLinks.find((l) => l.network === network)!.address;
    cluster = await ProcessCluster.start({
      root,
      nodes: NODES,
      storageServers: ["s1", "s2"],
      leaseTtlMs: 1000,
      lab: {
        etcdHost: host("cluster"),
        storageHost: host("storage"),
        namespaceOf: (nodeId) => topology().nodes.find((n) => n.id === nodeId)!.namespace,
        nodeConfig,
      },
    });
    vips = topology().vipPools.A.addresses.slice(0, 2);
    url = `nfs://${vips[0]}/?version=3&nfsport=${PORTS.nfs}&mountport=${PORTS.mount}`;
    await cluster.createVserver("net", vips, PORTS, 64 * 1024 * 1024, [
      `${topology().networks.A.cidr}(rw,no_root_squash)`,
    ]);
  });

  after(async () => {
    await cluster?.close();
    await NetworkLab.down(TAG);
    if (root !== undefined) await rm(root, { recursive: true, force: true });
  });

  const client = () => topology().clients[0]!.namespace;

  test("a port down with a good port left on its subnet: the VIPs move to it, the vserver stays", async (t) => {
    const on = await cluster.servedBy("net");
    await until("the VIPs on ports", async () => ((await vipPortsOf(on)).size === 2 ? true : undefined));
    const before = await vipPortsOf(on);
    const port = before.get(vips[0]!)!;
    assert.ok(port === "eth0" || port === "eth2", `on a subnet-A port: ${port}`);
    const other = port === "eth0" ? "eth2" : "eth0";
    const round = await writerRound(
      cluster,
      {
        writer,
        vserverId: "net",
        url,
        file: "/port",
        seconds: 6,
        killAfterMs: 2000,
        blockBytes: 65536,
        namespace: client(),
      },
      async (from) => {
        await lab.fault({ kind: "port-down", node: from, port });
        await until("the VIP on the other port", async () =>
          (await vipPortsOf(from)).get(vips[0]!) === other ? true : undefined,
        );
        return { takenOverBy: from };
      },
    );
    t.diagnostic(
      `port ${port} down on ${on}: VIPs moved to ${other}; client's longest gap ${Math.round(round.stallMs)} ms, ${round.acked} blocks verified`,
    );
    assert.equal(await cluster.servedBy("net"), on, "the vserver did not move");
    assert.equal(round.verified, round.acked, `blocks lost or damaged: ${round.badBlocks.join(", ")}`);
    assert.ok(round.acked > 20);
    // Generous for a loaded CI machine; the goal (0.5 s) is bench:net's.
    assert.ok(round.stallMs < 5000, `the client stalled ${round.stallMs} ms:\n${round.writerOutput}`);
    await lab.fault({ kind: "heal" });
  });

  /** A fault on the serving node under the writer; the vserver must end up on another node. */
  async function moveRound(
    t: { diagnostic(message: string): void },
    what: string,
    file: string,
    fault: (node: string) => Promise<void>,
  ): Promise<void> {
    const on = await cluster.servedBy("net");
    const round = await writerRound(
      cluster,
      {
        writer,
        vserverId: "net",
        url,
        file,
        seconds: 20,
        killAfterMs: 2000,
        blockBytes: 65536,
        namespace: client(),
      },
      async (from) => {
        await fault(from);
        return { takenOverBy: await cluster.servedBy("net", from, 90_000) };
      },
    );
    t.diagnostic(
      `${what} on ${on}: vserver moved to ${round.takenOverBy}; client's longest gap ${Math.round(round.stallMs)} ms, ${round.acked} blocks verified`,
    );
    assert.notEqual(round.takenOverBy, on);
    assert.equal((await cluster.snapshot()).placements.get("net")?.record.node, round.takenOverBy);
    assert.equal(round.verified, round.acked, `blocks lost or damaged: ${round.badBlocks.join(", ")}`);
    await lab.fault({ kind: "heal" });
  }

  test("both ports on the VIPs' subnet down: the vserver moves to a node that reaches the subnet", (t) =>
    moveRound(t, "eth0 and eth2 down", "/subnet-ports", async (node) => {
      await lab.fault({ kind: "port-down", node, port: "eth0" });
      await lab.fault({ kind: "port-down", node, port: "eth2" });
    }));

  test("a storage cut: the vserver moves to a node that reaches the storage servers", (t) =>
    moveRound(t, "storage cut", "/storage", (node) => lab.fault({ kind: "storage-cut", node })));
});
