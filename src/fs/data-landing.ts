import { BLOCK_BYTES, type BlockDevice } from "../block/index.ts";
import { assert, assertionFailed } from "../util/assert.ts";
import { coalesceBlocks } from "./block-runs.ts";

/** Bytes of small writes held back before they are sent to the device without waiting for a commit. */
export const DEFERRED_BYTES_MAX = 16 * 1024 * 1024;

/** Device writes in flight at once when held-back blocks are sent. */
const DEFERRED_WRITES_IN_FLIGHT_MAX = 8;

/** Bytes landed since the last device flush began after which one is started in the background. */
export const FLUSH_AHEAD_BYTES = 16 * 1024 * 1024;

/**
 * Data blocks mapped in the tree whose device write has not finished. A write maps its new blocks
 * under the volume's lock and lets the device write land after the lock is released, so other
 * calls need not wait for the device; until it lands, reads take those blocks from here.
 *
 * Small writes are held back and sent together, neighbours on the device in one write, when a
 * commit needs them or too many bytes are held: a thousand 100-byte files then cost a few device
 * writes instead of a thousand. Copy-on-write keeps all of this safe: a block here is new, and a
 * freed block is reused only after a commit, which waits for every landing first.
 */
export class DataLanding {
  private readonly device: BlockDevice;
  private readonly onFailure: (error: unknown, start: number) => void;
  private readonly blocks = new Map<number, Uint8Array>();
  private readonly writes = new Set<Promise<void>>();
  /** Held-back blocks not yet sent, and their settling promise's resolvers. */
  private deferred: Array<{ block: number; bytes: Uint8Array }> = [];
  private deferredWaiters: Array<{ resolve: () => void; reject: (error: unknown) => void }> = [];
  /** Blocks landed since the last flush ahead began, and that flush while it runs. */
  private unflushedBlocks = 0;
  private flushAhead: Promise<void> | null = null;

  constructor(device: BlockDevice, onFailure: (error: unknown, start: number) => void) {
    this.device = device;
    this.onFailure = onFailure;
  }

  /** Blocks not yet landed. */
  get pendingBlocks(): number {
    return this.blocks.size;
  }

  private hold(start: number, data: Uint8Array): number {
    assert(data.length > 0 && data.length % BLOCK_BYTES === 0, "a landing is whole blocks");
    const count = data.length / BLOCK_BYTES;
    for (let i = 0; i < count; i++) {
      if (this.blocks.has(start + i)) assertionFailed(`block ${start + i} is already landing`);
      this.blocks.set(start + i, data.subarray(i * BLOCK_BYTES, (i + 1) * BLOCK_BYTES));
    }
    return count;
  }

  private track(start: number, count: number, write: Promise<void>): Promise<void> {
    const landing = write.then(
      () => {
        for (let i = 0; i < count; i++) this.blocks.delete(start + i);
        this.writes.delete(landing);
        this.landed(count);
      },
      (error: unknown) => {
        // The blocks stay: the tree maps them, and a read must not see what the device holds.
        this.writes.delete(landing);
        this.onFailure(error, start);
        throw error;
      },
    );
    this.writes.add(landing);
    return landing;
  }

  /** Sends `data` to device block `start` now; the promise resolves when it is written. */
  begin(start: number, data: Uint8Array): Promise<void> {
    const count = this.hold(start, data);
    return this.track(start, count, this.device.write(start, data));
  }

  /**
   * Holds `data` (which nobody changes afterwards) for device block `start` until a commit or the
   * byte bound sends it. The promise resolves when it is written.
   */
  defer(start: number, data: Uint8Array): Promise<void> {
    const count = this.hold(start, data);
    for (let i = 0; i < count; i++) {
      this.deferred.push({ block: start + i, bytes: data.subarray(i * BLOCK_BYTES, (i + 1) * BLOCK_BYTES) });
    }
    const written = new Promise<void>((resolve, reject) => this.deferredWaiters.push({ resolve, reject }));
    // Whoever needs it awaits settled(); a failure is reported there and through onFailure.
    written.catch(() => undefined);
    if (this.deferred.length * BLOCK_BYTES >= DEFERRED_BYTES_MAX) this.sendDeferred();
    return written;
  }

  /** Sends every held-back block, neighbours together. */
  private sendDeferred(): void {
    if (this.deferred.length === 0) return;
    const blocks = this.deferred;
    const waiters = this.deferredWaiters;
    this.deferred = [];
    this.deferredWaiters = [];
    const runs = coalesceBlocks(blocks);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < runs.length) {
        const run = runs[next++]!;
        await this.track(run.start, run.data.length / BLOCK_BYTES, this.device.write(run.start, run.data));
      }
    };
    const all = Promise.all(
      Array.from({ length: Math.min(DEFERRED_WRITES_IN_FLIGHT_MAX, runs.length) }, worker),
    );
    const sent = all.then(
      () => {
        for (const w of waiters) w.resolve();
      },
      (error: unknown) => {
        for (const w of waiters) w.reject(error);
        throw error;
      },
    );
    sent.catch(() => undefined);
    this.writes.add(sent);
    void sent.finally(() => this.writes.delete(sent)).catch(() => undefined);
  }

  /** Copies the landing blocks among device blocks [start, start + count) over `data` (read from the device). */
  overlay(start: number, count: number, data: Uint8Array): void {
    if (this.blocks.size === 0) return;
    for (let i = 0; i < count; i++) {
      const block = this.blocks.get(start + i);
      if (block !== undefined) data.set(block, i * BLOCK_BYTES);
    }
  }

  /** Sends what is held back and waits until every landing begun so far has finished; rejects if any failed. */
  async settled(): Promise<void> {
    this.sendDeferred();
    while (this.writes.size > 0) await Promise.all([...this.writes]);
  }

  /**
   * Once FLUSH_AHEAD_BYTES have landed, flushes the device in the background, so that a commit's
   * own flush (taken under the volume's lock, with every call waiting) finds little left to do:
   * a stream of large writes no longer stalls for the flush of 64 MiB at each commit. Only a
   * barrier ahead of time: the commit still flushes everything it needs itself.
   */
  private landed(count: number): void {
    this.unflushedBlocks += count;
    if (this.flushAhead !== null || this.unflushedBlocks * BLOCK_BYTES < FLUSH_AHEAD_BYTES) return;
    this.unflushedBlocks = 0;
    // A failure here says nothing the commit's own flush will not: the commit reports it.
    const flush: Promise<void> = this.device
      .flush()
      .catch(() => undefined)
      .finally(() => {
        if (this.flushAhead === flush) this.flushAhead = null;
      });
    this.flushAhead = flush;
  }

  /**
   * Waits for a flush ahead in progress. A commit calls it before its own flush: a device may not
   * let two flushes overlap and promise the second covers what the first has taken.
   */
  async flushedAhead(): Promise<void> {
    await this.flushAhead;
  }
}
