/**
 * Balance benchmark: a skewed storage workload before, during and after the balancer spreads it.
 *
 *   npm run bench:balance                    (4 servers, 8 s idle and after phases)
 *   npm run bench:balance -- --seconds 5
 *
 * Four storage servers on loopback TCP in this process (real sockets and chunk files), one RF=2
 * volume, a writer that writes and flushes one block at a time to the chunks that have a replica on
 * one server (so that server, and its partners, carry most of the load). Phases: idle (no balancing)
 * measures the client's throughput and p99 write latency; balancing runs the balancer until max/mean
 * load is within 1.2 (or 120 s), measuring the same while chunks move; after measures them again.
 * Goals: max/mean <= 1.2 after convergence, client throughput up, p99 during balancing <= 2x idle.
 */
import { parseArgs } from "node:util";
import { BLOCK_BYTES } from "../src/block/types.ts";
import { currentLoadRatio, StorageBalancer } from "../src/storage/balancer.ts";
import { takeCensus } from "../src/storage/chunk-census.ts";
import { StorageTestCluster } from "../test/support/storage-cluster.ts";
import { parsePositive, percentile } from "./stats.ts";

const MiB = 1024 * 1024;
const CHUNK_BLOCKS = 64;
const CONVERGE_MS_MAX = 120_000;

const { values } = parseArgs({ options: { seconds: { type: "string" } } });
const seconds = parsePositive(values.seconds, 8, "seconds");

const cluster = await StorageTestCluster.start({ servers: 4 });
try {
  await cluster.createVolume("vbench", 32 * MiB, 2, CHUNK_BLOCKS);
  const { device } = await cluster.openDevice("vbench");
  const census = await takeCensus(cluster.store);
  const hotServer = census.chunks[0]!.route.replicas[0]!.serverId;
  const hot = census.chunks
    .filter((c) => c.route.replicas.some((r) => r.serverId === hotServer))
    .map((c) => c.chunkIndex);

  let latencies: number[] = [];
  let writes = 0;
  let stop = false;
  let failures = 0;
  const writer = (async () => {
    const data = new Uint8Array(BLOCK_BYTES).fill(1);
    for (let n = 0; !stop; n++) {
      const chunk = hot[n % hot.length]!;
      const block = chunk * CHUNK_BLOCKS + (Math.floor(n / hot.length) % CHUNK_BLOCKS);
      const startedAt = performance.now();
      try {
        await device.write(block, data);
        await device.flush();
      } catch {
        failures++;
        continue;
      }
      latencies.push(performance.now() - startedAt);
      writes++;
    }
  })();

  const ratio = (): Promise<number> => currentLoadRatio(cluster.store, cluster.registry);
  const phase = async (ms: number): Promise<{ perSec: number; p99: number }> => {
    latencies = [];
    const from = writes;
    await new Promise((resolve) => setTimeout(resolve, ms));
    const sorted = [...latencies].sort((a, b) => a - b);
    return { perSec: ((writes - from) * 1000) / ms, p99: percentile(sorted, 0.99) };
  };

  console.log(`${hot.length} hot chunks, each with a replica on ${hotServer}; writer: 4 KiB write + flush`);
  // The monitors' rates build up over their half-life before the skew shows fully.
  await phase(Math.max(seconds * 1000, 12_000));
  const idle = await phase(seconds * 1000);
  const ratioBefore = await ratio();
  console.log(
    `idle:      ${idle.perSec.toFixed(0)} writes/s, p99 ${idle.p99.toFixed(1)} ms, max/mean ${ratioBefore.toFixed(2)}`,
  );

  const balancer = new StorageBalancer({
    store: cluster.store,
    registry: cluster.registry,
    mover: cluster.mover(),
    auto: false,
  });
  const startedAt = performance.now();
  latencies = [];
  const fromWrites = writes;
  const during: number[] = [];
  let converged = Number.NaN;
  while (performance.now() - startedAt < CONVERGE_MS_MAX) {
    await balancer.applyOnce();
    await balancer.settled();
    during.push(...latencies);
    latencies = [];
    await new Promise((resolve) => setTimeout(resolve, 2500));
    if ((await ratio()) <= 1.2 && balancer.counters.moved > 0) {
      converged = performance.now() - startedAt;
      break;
    }
  }
  during.push(...latencies);
  const balancingMs = performance.now() - startedAt;
  const duringP99 = percentile(
    [...during].sort((a, b) => a - b),
    0.99,
  );
  const duringPerSec = ((writes - fromWrites) * 1000) / balancingMs;
  console.log(
    `balancing: ${duringPerSec.toFixed(0)} writes/s, p99 ${duringP99.toFixed(1)} ms, ${balancer.counters.moved} chunks moved (${((balancer.counters.moved * CHUNK_BLOCKS * BLOCK_BYTES) / MiB).toFixed(1)} MiB), ${balancer.counters.failed} failed`,
  );
  await balancer.close();
  await phase(seconds * 1000);
  const afterPhase = await phase(seconds * 1000);
  const ratioAfter = await ratio();
  console.log(
    `after:     ${afterPhase.perSec.toFixed(0)} writes/s, p99 ${afterPhase.p99.toFixed(1)} ms, max/mean ${ratioAfter.toFixed(2)}`,
  );
  stop = true;
  await writer;
  await device.close();

  console.log("");
  console.log(
    `max/mean load: ${ratioBefore.toFixed(2)} -> ${ratioAfter.toFixed(2)}  (goal <= 1.2 ${ratioAfter <= 1.2 ? "met" : "NOT met"})`,
  );
  console.log(
    `time to converge: ${Number.isNaN(converged) ? `not within ${CONVERGE_MS_MAX / 1000} s` : `${(converged / 1000).toFixed(1)} s`}`,
  );
  const throughput = afterPhase.perSec / idle.perSec;
  console.log(
    `client throughput after / before: ${throughput.toFixed(2)}  (goal > 1 ${throughput > 1 ? "met" : "NOT met"})`,
  );
  const p99Ratio = duringP99 / idle.p99;
  console.log(
    `foreground p99 balancing / idle: ${p99Ratio.toFixed(2)}  (goal <= 2 ${p99Ratio <= 2 ? "met" : "NOT met"})`,
  );
  console.log(`client writes failed: ${failures}`);
} finally {
  await cluster.close();
}
