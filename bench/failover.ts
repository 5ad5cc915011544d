/**
 * Failover benchmark: the stall a client sees when the node serving its vserver is killed (-9).
 *
 *   npm run bench:failover                     (20 kills, 1 s node leases)
 *   npm run bench:failover -- --kills 40 --lease-ttl 2000
 *
 * A real etcd, two storage server processes and three `flotilla node` processes (filers), all on
 * this machine; with --hyperconverged, three nodes that are storage servers too (a kill takes a
 * replica of every chunk away as well, so writes also wait for the storage server to be declared
 * dead). Each round, the C failover writer (libnfs, async, auto-reconnect) writes FILE_SYNC
 * blocks to the vserver through a VIP; the owning node is killed mid-stream; the vserver comes up on
 * another node on the same VIPs; the writer goes on, and every block it saw acknowledged is read
 * back. The killed node is started again before the next round, so the next kill may hit any node,
 * the master included. Prints each round, then min, median, p90 and max of the stall (the longest
 * gap between two replies the client saw), against the goal (median 2 s) and against the node lease
 * TTL measured in the same run as the floor (a dead node is only known dead when its lease expires).
 * For scale, the published defaults of peers (not run here): CTDB's dead-node detection alone is
 * about 30 s, keepalived's failover about 3.6 s.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { buildLibnfsProgram } from "../test/integration/tools.ts";
import { failoverRound } from "../test/support/failover-round.ts";
import { ProcessCluster } from "../test/support/process-cluster.ts";
import { parsePositive, percentile } from "./stats.ts";

const GOAL_MEDIAN_MS = 2000;
const KEEPALIVED_MS = 3600;
const CTDB_DETECTION_MS = 30_000;

const { values } = parseArgs({
  options: {
    kills: { type: "string" },
    "lease-ttl": { type: "string" },
    seconds: { type: "string" },
    hyperconverged: { type: "boolean", default: false },
    "storage-grace": { type: "string" },
    help: { type: "boolean", default: false },
  },
});
if (values.help) {
  process.stdout.write(
    "npm run bench:failover -- [--kills N (20)] [--lease-ttl MS (1000)] [--seconds S per round (5)]\n",
  );
  process.exit(0);
}
const kills = parsePositive(values.kills, 20, "kills");
const leaseTtlMs = parsePositive(values["lease-ttl"], 1000, "lease-ttl");
const seconds = parsePositive(values.seconds, 5, "seconds");
const storageGraceMs = values["storage-grace"] === undefined ? undefined : Number(values["storage-grace"]);
if (storageGraceMs !== undefined && (!Number.isInteger(storageGraceMs) || storageGraceMs < 0))
  throw new Error("--storage-grace must be a whole number of ms");

const root = await mkdtemp(join(tmpdir(), "flotilla-bench-failover-"));
const cluster = await ProcessCluster.start({
  root,
  nodes: ["n1", "n2", "n3"],
  // Hyperconverged: each node also runs a storage server, which dies with it.
  storageServers: values.hyperconverged ? [] : ["s1", "s2"],
  hyperconverged: values.hyperconverged,
  ...(storageGraceMs === undefined ? {} : { storageGraceMs }),
  leaseTtlMs,
  logLevel: "warn",
});
try {
  const writer = await buildLibnfsProgram(root, "failover-writer");
  const ports = { nfs: 22049, mount: 22048 };
  const vips = ["127.0.61.1", "127.0.61.2"];
  await cluster.createVserver("bench", vips, ports, 512 * 1024 * 1024);
  const url = `nfs://${vips[0]}/?version=3&nfsport=${ports.nfs}&mountport=${ports.mount}`;
  const stalls: number[] = [];
  const masterStalls: number[] = [];
  let lost = 0;
  process.stdout.write(
    `failover: ${kills} kills, node lease ${leaseTtlMs} ms, ${seconds} s of writes per round, ${values.hyperconverged ? `hyperconverged nodes (filer + storage; storage grace ${storageGraceMs ?? 0} ms)` : "filer nodes and two separate storage servers"}\n`,
  );
  for (let round = 1; round <= kills; round++) {
    // Hyperconverged, a kill also takes a storage server: let the tier re-replicate first, or the
    // next kill is a double failure (chunks whose both replicas are down wait for a node to return).
    const healMs = values.hyperconverged ? await cluster.untilStorageHealthy() : 0;
    const owner = await cluster.servedBy("bench");
    const masterBefore = (await cluster.snapshot()).master?.record.nodeId;
    const result = await failoverRound(cluster, {
      writer,
      vserverId: "bench",
      url,
      // One file, rewritten from the start each round: the volume never fills up.
      file: "/stream",
      seconds,
      killAfterMs: 1500,
      blockBytes: 65536,
    });
    const wasMaster = masterBefore === owner;
    stalls.push(result.stallMs);
    if (wasMaster) masterStalls.push(result.stallMs);
    lost += result.acked - result.verified;
    if (result.errors > 0) {
      const reasons = result.writerOutput.split("\n").filter((line) => line.includes("failed"));
      process.stdout.write(`    failed calls, first reasons: ${reasons.slice(0, 3).join(" | ")}\n`);
    }
    process.stdout.write(
      `  round ${String(round).padStart(2)}: killed ${result.killed}${wasMaster ? " (master)" : "         "} -> ${result.takenOverBy}  stall ${Math.round(
        result.stallMs,
      )
        .toString()
        .padStart(
          5,
        )} ms  ${result.acked} blocks acknowledged, ${result.verified} verified, ${result.errors} failed calls retried${values.hyperconverged ? `, healed ${healMs} ms before` : ""}\n`,
    );
  }
  const sorted = [...stalls].sort((a, b) => a - b);
  const median = percentile(sorted, 0.5);
  const fmt = (ms: number): string => `${Math.round(ms)} ms`;
  process.stdout.write(
    [
      "",
      `client stall over ${kills} kills: min ${fmt(sorted[0] ?? Number.NaN)}, median ${fmt(median)}, p90 ${fmt(percentile(sorted, 0.9))}, max ${fmt(sorted.at(-1) ?? Number.NaN)}`,
      `  of which the master's node was killed ${masterStalls.length} times${
        masterStalls.length > 0
          ? `: median ${fmt(
              percentile(
                [...masterStalls].sort((a, b) => a - b),
                0.5,
              ),
            )}`
          : ""
      }`,
      `acknowledged blocks lost or damaged: ${lost}`,
      `median / goal (${GOAL_MEDIAN_MS} ms): ${(median / GOAL_MEDIAN_MS).toFixed(2)}  ${median <= GOAL_MEDIAN_MS ? "(goal met)" : "(goal NOT met)"}`,
      `median / node lease TTL (${leaseTtlMs} ms, the detection floor): ${(median / leaseTtlMs).toFixed(2)}`,
      `median / keepalived default failover (~${KEEPALIVED_MS} ms, published, not run): ${(median / KEEPALIVED_MS).toFixed(2)}`,
      `median / CTDB default dead-node detection (~${CTDB_DETECTION_MS} ms, published, not run): ${(median / CTDB_DETECTION_MS).toFixed(3)}`,
      "",
    ].join("\n"),
  );
  if (lost > 0) process.exitCode = 1;
} finally {
  await cluster.close();
  await rm(root, { recursive: true, force: true });
}
