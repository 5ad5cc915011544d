/**
 * Move benchmark: the stall a client sees when its vserver is moved to another node on purpose,
 * live (`vserver move --live`: the service state's pages pre-copied, a short suspension, a handover)
 * against cold (`vserver move`: stopped, handed over, started afresh on the target), in one run.
 *
 *   npm run bench:move                       (20 live and 20 cold moves, interleaved)
 *   npm run bench:move -- --moves 10 --seconds 4
 *
 * A real etcd, two storage server processes and three `flotilla node` processes on this machine.
 * Each round, the C failover writer (libnfs, async, auto-reconnect) writes FILE_SYNC blocks through
 * a VIP; mid-stream the operator's command moves the vserver to the next node; the writer goes on,
 * then every block it saw acknowledged is read back. The stall is the longest gap between two
 * replies the client saw. Live and cold rounds alternate, so drift in the machine's load hits both
 * alike. Goals: live median <= 200 ms, and cold median / live median >= 5. For scale, published
 * defaults of peers (not run here): QEMU's migration downtime target 300 ms, vMotion's switch-over
 * about 500 ms, ONTAP's volume move cutover window 30 s.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { buildLibnfsProgram } from "../test/integration/tools.ts";
import { type FailoverRound, writerRound } from "../test/support/failover-round.ts";
import { ProcessCluster } from "../test/support/process-cluster.ts";
import { type LiveMoveJson, vserverMove } from "../test/support/vserver-move.ts";
import { parsePositive, percentile } from "./stats.ts";

const GOAL_LIVE_MEDIAN_MS = 200;
const GOAL_RATIO = 5;
const PEERS: readonly [string, number][] = [
  ["QEMU default downtime target", 300],
  ["vMotion switch-over", 500],
  ["ONTAP vol move cutover window", 30_000],
];
const NODES = ["n1", "n2", "n3"];

const { values } = parseArgs({
  options: {
    moves: { type: "string" },
    seconds: { type: "string" },
    help: { type: "boolean", default: false },
  },
});
if (values.help) {
  process.stdout.write(
    "npm run bench:move -- [--moves N of each kind (20)] [--seconds S of writes per round (4)]\n",
  );
  process.exit(0);
}
const moves = parsePositive(values.moves, 20, "moves");
const seconds = parsePositive(values.seconds, 4, "seconds");

interface Round {
  readonly kind: "live" | "cold";
  readonly result: FailoverRound;
  readonly live?: LiveMoveJson;
}

const root = await mkdtemp(join(tmpdir(), "flotilla-bench-move-"));
const cluster = await ProcessCluster.start({
  root,
  nodes: NODES,
  storageServers: ["s1", "s2"],
  leaseTtlMs: 1000,
  logLevel: "warn",
});
try {
  const writer = await buildLibnfsProgram(root, "failover-writer");
  const ports = { nfs: 23049, mount: 23048 };
  const vips = ["127.0.62.1", "127.0.62.2"];
  await cluster.createVserver("bench", vips, ports, 512 * 1024 * 1024);
  const url = `nfs://${vips[0]}/?version=3&nfsport=${ports.nfs}&mountport=${ports.mount}`;
  process.stdout.write(
    `move: ${moves} live and ${moves} cold moves, interleaved, ${seconds} s of FILE_SYNC writes per round\n`,
  );
  const rounds: Round[] = [];
  for (let i = 0; i < 2 * moves; i++) {
    const kind = i % 2 === 0 ? "live" : "cold";
    let live: LiveMoveJson | undefined;
    const result = await writerRound(
      cluster,
      { writer, vserverId: "bench", url, file: "/stream", seconds, killAfterMs: 1500, blockBytes: 65536 },
      async (from) => {
        const to = NODES[(NODES.indexOf(from) + 1) % NODES.length] ?? "n1";
        const moved = await vserverMove(cluster, "bench", to, { live: kind === "live", json: true });
        if (moved.status !== 0) throw new Error(`the ${kind} move failed (${moved.status}):\n${moved.out}`);
        live = moved.live;
        return { takenOverBy: await cluster.servedBy("bench", from) };
      },
    );
    rounds.push({ kind, result, ...(live === undefined ? {} : { live }) });
    const detail =
      live === undefined
        ? ""
        : `  ${live.pagesSent} pages (${Math.round(live.bytesSent / 1024)} KiB) in ${live.rounds} pre-copy rounds, suspended ${Math.round(live.suspendedMs)} ms`;
    process.stdout.write(
      `  ${kind} ${String(Math.floor(i / 2) + 1).padStart(2)}: ${result.killed} -> ${result.takenOverBy}  stall ${String(Math.round(result.stallMs)).padStart(5)} ms  ${result.verified}/${result.acked} blocks verified${detail}\n`,
    );
  }
  const stalls = (kind: Round["kind"]): number[] =>
    rounds
      .filter((r) => r.kind === kind)
      .map((r) => r.result.stallMs)
      .sort((a, b) => a - b);
  const fmt = (ms: number): string => `${Math.round(ms)} ms`;
  const summary = (sorted: readonly number[]): string =>
    `min ${fmt(sorted[0] ?? Number.NaN)}, median ${fmt(percentile(sorted, 0.5))}, p90 ${fmt(percentile(sorted, 0.9))}, max ${fmt(sorted.at(-1) ?? Number.NaN)}`;
  const liveStalls = stalls("live");
  const coldStalls = stalls("cold");
  const liveMedian = percentile(liveStalls, 0.5);
  const coldMedian = percentile(coldStalls, 0.5);
  const moved = rounds.flatMap((r) => (r.live === undefined ? [] : [r.live]));
  const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const suspended = moved.map((m) => m.suspendedMs).sort((a, b) => a - b);
  const lost = rounds.reduce((n, r) => n + (r.result.acked - r.result.verified), 0);
  const ratio = coldMedian / liveMedian;
  process.stdout.write(
    [
      "",
      `live move stall: ${summary(liveStalls)}`,
      `cold move stall: ${summary(coldStalls)}`,
      `live moves sent ${mean(moved.map((m) => m.pagesSent)).toFixed(1)} pages (${(mean(moved.map((m) => m.bytesSent)) / 1024).toFixed(0)} KiB) on average in ${mean(moved.map((m) => m.rounds)).toFixed(1)} pre-copy rounds; suspended median ${fmt(percentile(suspended, 0.5))}, max ${fmt(suspended.at(-1) ?? Number.NaN)}`,
      `acknowledged blocks lost or damaged: ${lost}`,
      `live median / goal (${GOAL_LIVE_MEDIAN_MS} ms): ${(liveMedian / GOAL_LIVE_MEDIAN_MS).toFixed(2)}  ${liveMedian <= GOAL_LIVE_MEDIAN_MS ? "(goal met)" : "(goal NOT met)"}`,
      `cold median / live median: ${ratio.toFixed(1)}x  ${ratio >= GOAL_RATIO ? `(goal ${GOAL_RATIO}x met)` : `(goal ${GOAL_RATIO}x NOT met)`}`,
      ...PEERS.map(
        ([name, ms]) =>
          `live median / ${name} (~${ms} ms, published, not run): ${(liveMedian / ms).toFixed(3)}`,
      ),
      "",
    ].join("\n"),
  );
  if (lost > 0) process.exitCode = 1;
} finally {
  await cluster.close();
  await rm(root, { recursive: true, force: true });
}
