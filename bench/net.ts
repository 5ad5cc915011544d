/**
 * Network benchmark: the stall a client sees for each kind of network fault, in the lab (needs root,
 * iproute2, arping, etcd, gcc and libnfs), with a peer in the same run.
 *
 *   npm run bench:net                     (10 faults of each kind)
 *   npm run bench:net -- --rounds 3
 *
 * Three `flotilla node` processes in lab namespaces with the Linux VIP driver, two ports on each
 * client subnet; etcd and two storage servers on this host; the C failover writer (libnfs, FILE_SYNC,
 * auto-reconnect) in a client namespace. Each round the writer runs, the fault is made mid-stream,
 * the writer goes on, every acknowledged block is read back, and the lab is healed. Kinds:
 * - port: the VIPs' port goes down; they move to the node's other port on the subnet;
 * - subnet-ports: both of the node's ports on the VIPs' subnet go down; the vserver moves;
 * - storage: the node's storage network is cut; the vserver moves;
 * - subnet-cut: the switch stops passing the node's ports on the VIPs' subnet (link stays); other
 *   nodes answer for the VIPs and forward to it; the vserver stays;
 * - subnet-ports without tickles (the peer): the same as subnet-ports on a cluster whose nodes send
 *   no tickle ACKs, as a VIP failover without CTDB's trick behaves.
 * The stall is the longest gap between two replies the client saw. Goal: port <= 500 ms (median).
 */
import { parseArgs } from "node:util";
import { type FailoverRound, writerRound } from "../test/support/failover-round.ts";
import { LAB_VSERVER, LabCluster } from "../test/support/lab-cluster.ts";
import { until } from "../test/support/until.ts";
import { parsePositive, percentile } from "./stats.ts";

const GOAL_PORT_MEDIAN_MS = 500;

const { values } = parseArgs({
  options: { rounds: { type: "string" }, help: { type: "boolean", default: false } },
});
if (values.help) {
  process.stdout.write("npm run bench:net -- [--rounds N of each fault kind (10)]\n");
  process.exit(0);
}
const rounds = parsePositive(values.rounds, 10, "rounds");
if (process.getuid?.() !== 0) {
  process.stderr.write("bench:net needs root: it builds a network lab (ip netns, veth, bridges)\n");
  process.exit(2);
}

type Kind = "port" | "subnet-ports" | "storage" | "subnet-cut" | "subnet-ports, no tickles";
const results = new Map<Kind, FailoverRound[]>();

async function round(net: LabCluster, kind: Kind, index: number): Promise<void> {
  const seconds = kind === "port" ? 6 : kind === "subnet-cut" ? 12 : 20;
  const result = await writerRound(
    net.cluster,
    {
      writer: net.writer,
      vserverId: LAB_VSERVER,
      url: net.url,
      file: `/${kind.replaceAll(/[^a-z]/g, "")}-${index}`,
      seconds,
      killAfterMs: 2000,
      blockBytes: 65536,
      namespace: net.client,
    },
    async (from) => {
      if (kind === "port") {
        const port = (await net.vipPortsOf(from)).get(net.vips[0]!) === "eth2" ? "eth2" : "eth0";
        await net.lab.fault({ kind: "port-down", node: from, port });
        await until(
          "the VIP on another port",
          async () => ((await net.vipPortsOf(from)).get(net.vips[0]!) !== port ? true : undefined),
          30_000,
        );
        return { takenOverBy: from };
      }
      if (kind === "subnet-cut") {
        await net.lab.fault({ kind: "subnet-down", node: from, subnet: "A" });
        await until(
          "the VIPs routed through other nodes",
          async () => ((await net.cluster.snapshot()).routes.size === net.vips.length ? true : undefined),
          30_000,
        );
        return { takenOverBy: from };
      }
      if (kind === "storage") await net.lab.fault({ kind: "storage-cut", node: from });
      else {
        await net.lab.fault({ kind: "port-down", node: from, port: "eth0" });
        await net.lab.fault({ kind: "port-down", node: from, port: "eth2" });
      }
      return { takenOverBy: await net.cluster.servedBy(LAB_VSERVER, from, 90_000) };
    },
  );
  await net.lab.fault({ kind: "heal" });
  if (kind === "subnet-cut")
    await until(
      "the routes gone",
      async () => ((await net.cluster.snapshot()).routes.size === 0 ? true : undefined),
      30_000,
    );
  const list = results.get(kind) ?? [];
  list.push(result);
  results.set(kind, list);
  process.stdout.write(
    `  ${kind.padEnd(24)} ${String(index + 1).padStart(2)}: ${result.killed} -> ${result.takenOverBy}  stall ${String(Math.round(result.stallMs)).padStart(6)} ms  ${result.verified}/${result.acked} blocks verified\n`,
  );
}

async function runKinds(tag: string, tickle: boolean, kinds: readonly Kind[]): Promise<void> {
  const net = await LabCluster.start({ tag, tickle, logLevel: "warn" });
  try {
    await net.cluster.servedBy(LAB_VSERVER);
    for (let i = 0; i < rounds; i++) for (const kind of kinds) await round(net, kind, i);
  } finally {
    await net.close();
  }
}

process.stdout.write(`net: ${rounds} faults of each kind, libnfs FILE_SYNC writer in a client namespace\n`);
await runKinds("bnet", true, ["port", "subnet-ports", "storage", "subnet-cut"]);
await runKinds("bnet0", false, ["subnet-ports, no tickles"]);

const fmt = (ms: number): string => `${Math.round(ms)} ms`;
const medianOf = (kind: Kind): number =>
  percentile(
    (results.get(kind) ?? []).map((r) => r.stallMs).sort((a, b) => a - b),
    0.5,
  );
process.stdout.write("\n");
let lost = 0;
let empty = 0;
for (const [kind, list] of results) {
  empty += list.filter((r) => r.acked === 0).length;
  const sorted = list.map((r) => r.stallMs).sort((a, b) => a - b);
  lost += list.reduce((n, r) => n + (r.acked - r.verified), 0);
  process.stdout.write(
    `${kind.padEnd(24)} stall min ${fmt(sorted[0] ?? Number.NaN)}, median ${fmt(percentile(sorted, 0.5))}, max ${fmt(sorted.at(-1) ?? Number.NaN)}\n`,
  );
}
const port = medianOf("port");
const peer = medianOf("subnet-ports, no tickles") / medianOf("subnet-ports");
process.stdout.write(
  [
    `acknowledged blocks lost or damaged: ${lost}`,
    `rounds in which no block was acknowledged (a broken round, not a stall): ${empty}`,
    `port median / goal (${GOAL_PORT_MEDIAN_MS} ms): ${(port / GOAL_PORT_MEDIAN_MS).toFixed(2)}  ${port <= GOAL_PORT_MEDIAN_MS ? "(goal met)" : "(goal NOT met)"}`,
    `subnet-ports median without tickles / with: ${peer.toFixed(1)}x`,
    "",
  ].join("\n"),
);
if (lost > 0 || empty > 0) process.exitCode = 1;
