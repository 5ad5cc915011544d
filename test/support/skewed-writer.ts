/**
 * A skewed storage workload for balancer tests: one writer that writes and flushes one block at a
 * time, each stamped with a sequence number, to the chunks that have a replica on one server (so that
 * server, and its partners, carry most of the load). It remembers every acknowledged write, so a test
 * can read each back afterwards.
 */
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import type { RemoteBlockDevice } from "../../src/block/remote-device.ts";
import { BLOCK_BYTES } from "../../src/block/types.ts";
import type { StorageBalancer } from "../../src/storage/balancer.ts";
import { takeCensus } from "../../src/storage/chunk-census.ts";
import type { CoordinationStore } from "../../src/store/index.ts";

const FAILURE_PAUSE_MS = 5;

export class SkewedWriter {
  /** The server whose chunks are written. */
  readonly hotServer: string;
  readonly hotChunks: readonly number[];
  /** Block → the sequence number its last acknowledged write carried. */
  readonly written = new Map<number, number>();
  writes = 0;
  failures = 0;
  private stopping = false;
  private readonly running: Promise<void>;
  private readonly device: RemoteBlockDevice;
  private readonly chunkBlocks: number;

  private constructor(
    device: RemoteBlockDevice,
    chunkBlocks: number,
    hotServer: string,
    hotChunks: number[],
  ) {
    this.device = device;
    this.chunkBlocks = chunkBlocks;
    this.hotServer = hotServer;
    this.hotChunks = hotChunks;
    this.running = this.run();
  }

  /** Starts writing to the chunks of the first chunk's first replica's server. */
  static async start(
    store: CoordinationStore,
    device: RemoteBlockDevice,
    chunkBlocks: number,
    options: { tolerateFailures?: boolean } = {},
  ): Promise<SkewedWriter> {
    const census = await takeCensus(store);
    const hotServer = census.chunks[0]!.route.replicas[0]!.serverId;
    const hot = census.chunks
      .filter((c) => c.route.replicas.some((r) => r.serverId === hotServer))
      .map((c) => c.chunkIndex);
    assert.ok(hot.length >= 4, `${hot.length} chunks on ${hotServer}`);
    const writer = new SkewedWriter(device, chunkBlocks, hotServer, hot);
    writer.tolerateFailures = options.tolerateFailures ?? false;
    return writer;
  }

  private tolerateFailures = false;

  async stop(): Promise<void> {
    this.stopping = true;
    await this.running;
  }

  /** Reads every acknowledged write back and checks it carries its sequence number. */
  async verify(): Promise<void> {
    for (const [block, value] of this.written) {
      const data = await this.device.read(block, 1);
      assert.equal(new DataView(data.buffer, data.byteOffset).getUint32(0), value, `block ${block}`);
    }
  }

  private async run(): Promise<void> {
    // Let the constructor return before the first write.
    await Promise.resolve();
    for (let n = 0; !this.stopping; n++) {
      const chunkIndex = this.hotChunks[n % this.hotChunks.length]!;
      const block =
        chunkIndex * this.chunkBlocks + (Math.floor(n / this.hotChunks.length) % this.chunkBlocks);
      const data = new Uint8Array(BLOCK_BYTES);
      new DataView(data.buffer).setUint32(0, n + 1);
      try {
        await this.device.write(block, data);
        await this.device.flush();
      } catch (error) {
        if (!this.tolerateFailures) throw error;
        this.failures++;
        // A write that fails at once (a closed device) must not turn this loop into one that never
        // yields to timers and I/O: the test process would spin instead of closing its cluster.
        await sleep(FAILURE_PAUSE_MS);
        continue;
      }
      this.written.set(block, n + 1);
      this.writes++;
    }
  }
}

/**
 * Runs balancing passes, each after the monitors have had 2.5 s to see the last one's effect, until
 * max/mean load is within `ratioMax` (and `done()` agrees) or `timeoutMs` passes. Returns the first
 * skewed ratio seen and the last.
 */
export async function balanceUntilSpread(
  ratioNow: () => Promise<number>,
  balancer: StorageBalancer,
  options: { ratioMax?: number; timeoutMs?: number; done?: () => boolean } = {},
): Promise<{ before: number; after: number }> {
  const ratioMax = options.ratioMax ?? 1.2;
  const deadline = performance.now() + (options.timeoutMs ?? 90_000);
  let before = 0;
  let after = Number.POSITIVE_INFINITY;
  while (performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 2500));
    after = await ratioNow();
    if (before === 0 && after > 1) before = after;
    if (after <= ratioMax && balancer.counters.moved > 0 && (options.done?.() ?? true)) break;
    await balancer.applyOnce();
    await balancer.settled();
  }
  return { before, after };
}
