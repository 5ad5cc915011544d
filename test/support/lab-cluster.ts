/**
 * A cluster of processes in a network lab, for the network's end-to-end test and bench:net: three
 * `flotilla node` processes, each in its node namespace with the Linux VIP driver on two ports per
 * client subnet; etcd and two storage servers on this host, on the lab's host links; one client
 * namespace on subnet A, where the libnfs writer runs; one vserver with two VIPs on subnet A.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NetworkLab } from "../../src/net/lab.ts";
import type { LabTopology } from "../../src/net/lab-topology.ts";
import { buildLibnfsProgram } from "../integration/tools.ts";
import { ProcessCluster } from "./process-cluster.ts";

export const LAB_VSERVER = "net";
const PORTS = { nfs: 2049, mount: 20_048 };
/** Room for bench:net's rounds: each writes up to ~60 MiB and its file is kept for the read-back (50 rounds). */
const VOLUME_BYTES = 4 * 1024 * 1024 * 1024;

export interface LabClusterOptions {
  readonly tag: string;
  readonly logLevel?: string;
  /** The nodes' network.tickle setting (default true). */
  readonly tickle?: boolean;
}

export class LabCluster implements AsyncDisposable {
  readonly lab: NetworkLab;
  readonly cluster: ProcessCluster;
  readonly writer: string;
  readonly vips: readonly string[];
  readonly url: string;
  /** The client namespace the writer runs in. */
  readonly client: string;
  private readonly root: string;

  private constructor(lab: NetworkLab, cluster: ProcessCluster, writer: string, root: string) {
    this.lab = lab;
    this.cluster = cluster;
    this.writer = writer;
    this.root = root;
    this.vips = lab.topology.vipPools.A.addresses.slice(0, 2);
    this.url = `nfs://${this.vips[0]}/?version=3&nfsport=${PORTS.nfs}&mountport=${PORTS.mount}`;
    this.client = lab.topology.clients[0]!.namespace;
  }

  static async start(options: LabClusterOptions): Promise<LabCluster> {
    const root = await mkdtemp(join(tmpdir(), "flotilla-net-e2e-"));
    let lab: NetworkLab | undefined;
    let cluster: ProcessCluster | undefined;
    try {
      const writer = await buildLibnfsProgram(root, "failover-writer");
      lab = await NetworkLab.up({ tag: options.tag, nodes: 3, clients: 1, dualPorts: true, hostLinks: true });
      const topology = lab.topology;
      const host = (network: "cluster" | "storage") =>
        topology.hostLinks.find((l) => l.network === network)!.address;
      cluster = await ProcessCluster.start({
        root,
        nodes: topology.nodes.map((n) => n.id),
        storageServers: ["s1", "s2"],
        leaseTtlMs: 1000,
        ...(options.logLevel === undefined ? {} : { logLevel: options.logLevel }),
        lab: {
          etcdHost: host("cluster"),
          storageHost: host("storage"),
          namespaceOf: (nodeId) => topology.nodes.find((n) => n.id === nodeId)!.namespace,
          nodeConfig: (nodeId) => nodeConfig(topology, nodeId, options.tickle ?? true),
        },
      });
      const made = new LabCluster(lab, cluster, writer, root);
      await cluster.createVserver(LAB_VSERVER, [...made.vips], PORTS, VOLUME_BYTES, [
        `${topology.networks.A.cidr}(rw,no_root_squash)`,
      ]);
      return made;
    } catch (error) {
      await cluster?.close();
      if (lab !== undefined) await NetworkLab.down(options.tag);
      await rm(root, { recursive: true, force: true });
      throw error;
    }
  }

  /** Which port of its node each VIP is on, as the node publishes it. */
  async vipPortsOf(nodeId: string): Promise<Map<string, string | null>> {
    const record = (await this.cluster.snapshot()).nodes.get(nodeId);
    return new Map((record?.vipPorts ?? []).map((v) => [v.vip, v.port]));
  }

  async close(): Promise<void> {
    await this.cluster.close();
    await NetworkLab.down(this.lab.topology.tag);
    await rm(this.root, { recursive: true, force: true });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

function nodeConfig(topology: LabTopology, nodeId: string, tickle: boolean): Record<string, unknown> {
  const node = topology.nodes.find((n) => n.id === nodeId)!;
  return {
    network: {
      driver: "linux",
      tickle,
      // The lab's writers move a few MB/s: balance from 64 KiB/s on.
      portBalance: { floorBytesPerSec: 64 * 1024 },
      ports: node.ports.flatMap((p) =>
        p.network === "A" || p.network === "B"
          ? [{ name: p.name, subnet: topology.networks[p.network].cidr }]
          : [],
      ),
    },
    liveMove: { host: node.ports.find((p) => p.name === "clu0")!.address },
  };
}
