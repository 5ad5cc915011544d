/**
 * A storage server's load monitor: what its clients ask of it, as rates that decay (a half-life, not
 * a window, so a report costs nothing to keep current), per server and for the hottest chunks.
 * Bounded: a fixed latency histogram, and at most `chunksTracked` chunks, the coldest forgotten first
 * (what is forgotten still counts in the server's totals, and the balancer reads it as base load).
 */
import { assert } from "../util/assert.ts";
import { type Clock, systemClock } from "../util/clock.ts";

export const LOAD_HALF_LIFE_MS_DEFAULT = 10_000;
export const HOT_CHUNKS_REPORTED = 16;
const CHUNKS_TRACKED_DEFAULT = 4 * HOT_CHUNKS_REPORTED;
/** Latency buckets: bucket i holds latencies up to 0.01 ms · 1.25^i (about 0.01 ms .. 70 s). */
const LATENCY = Object.freeze({ buckets: 72, baseMs: 0.01, growth: 1.25 });

export interface ChunkHeat {
  readonly volumeId: string;
  readonly chunkIndex: number;
  readonly requestsPerSec: number;
  readonly bytesPerSec: number;
}

export interface LoadReport {
  readonly requestsPerSec: number;
  readonly readBytesPerSec: number;
  readonly writeBytesPerSec: number;
  readonly latencyP50Ms: number;
  readonly latencyP99Ms: number;
  /** 0..1: of the requests, those that began where the chunk's previous one ended. */
  readonly sequentialShare: number;
  /** 0..1: of the requests, the reads. */
  readonly readShare: number;
  readonly hotChunks: readonly ChunkHeat[];
}

/** A sum whose past counts less and less: halves every half-life. */
class Decaying {
  value = 0;
  private atMs: number;
  constructor(nowMs: number) {
    this.atMs = nowMs;
  }
  at(nowMs: number, halfLifeMs: number): number {
    if (nowMs > this.atMs) {
      this.value *= 2 ** (-(nowMs - this.atMs) / halfLifeMs);
      this.atMs = nowMs;
    }
    return this.value;
  }
  add(amount: number, nowMs: number, halfLifeMs: number): void {
    this.value = this.at(nowMs, halfLifeMs) + amount;
  }
}

interface TrackedChunk {
  readonly volumeId: string;
  readonly chunkIndex: number;
  readonly requests: Decaying;
  readonly bytes: Decaying;
  /** The block after the last request's end: the next one starting there is sequential. */
  nextBlock: number;
}

export class LoadMonitor {
  private readonly clock: Clock;
  private readonly halfLifeMs: number;
  private readonly chunksTracked: number;
  private readonly requests: Decaying;
  private readonly reads: Decaying;
  private readonly sequential: Decaying;
  private readonly readBytes: Decaying;
  private readonly writeBytes: Decaying;
  private readonly latency: Decaying[];
  private readonly chunks = new Map<string, TrackedChunk>();

  constructor(options: { clock?: Clock; halfLifeMs?: number; chunksTracked?: number } = {}) {
    this.clock = options.clock ?? systemClock;
    this.halfLifeMs = options.halfLifeMs ?? LOAD_HALF_LIFE_MS_DEFAULT;
    this.chunksTracked = options.chunksTracked ?? CHUNKS_TRACKED_DEFAULT;
    assert(this.halfLifeMs > 0 && this.chunksTracked >= 1, "a positive half-life and chunk bound");
    const now = this.clock.monotonicMs();
    this.requests = new Decaying(now);
    this.reads = new Decaying(now);
    this.sequential = new Decaying(now);
    this.readBytes = new Decaying(now);
    this.writeBytes = new Decaying(now);
    this.latency = Array.from({ length: LATENCY.buckets }, () => new Decaying(now));
  }

  /** One finished client read or write of `blockCount` blocks at `blockOffset` of a chunk. */
  record(
    kind: "read" | "write",
    chunk: { readonly volumeId: string; readonly chunkIndex: number },
    blockOffset: number,
    blockCount: number,
    bytes: number,
    latencyMs: number,
  ): void {
    const now = this.clock.monotonicMs();
    const h = this.halfLifeMs;
    this.requests.add(1, now, h);
    if (kind === "read") {
      this.reads.add(1, now, h);
      this.readBytes.add(bytes, now, h);
    } else this.writeBytes.add(bytes, now, h);
    this.latency[bucketOf(latencyMs)]!.add(1, now, h);
    const key = `${chunk.volumeId}/${chunk.chunkIndex}`;
    let tracked = this.chunks.get(key);
    if (tracked === undefined) {
      if (this.chunks.size >= this.chunksTracked) this.forgetColdest(now);
      tracked = {
        volumeId: chunk.volumeId,
        chunkIndex: chunk.chunkIndex,
        requests: new Decaying(now),
        bytes: new Decaying(now),
        nextBlock: -1,
      };
      this.chunks.set(key, tracked);
    }
    if (tracked.nextBlock === blockOffset) this.sequential.add(1, now, h);
    tracked.nextBlock = blockOffset + blockCount;
    tracked.requests.add(1, now, h);
    tracked.bytes.add(bytes, now, h);
  }

  report(): LoadReport {
    const now = this.clock.monotonicMs();
    const h = this.halfLifeMs;
    // A steady rate r sums, decayed, to r · h / ln 2.
    const perSec = (d: Decaying): number => (d.at(now, h) * Math.LN2 * 1000) / h;
    const requests = this.requests.at(now, h);
    const hotChunks = [...this.chunks.values()]
      .map((c) => ({
        volumeId: c.volumeId,
        chunkIndex: c.chunkIndex,
        requestsPerSec: perSec(c.requests),
        bytesPerSec: perSec(c.bytes),
      }))
      .sort((a, b) => b.requestsPerSec - a.requestsPerSec)
      .slice(0, HOT_CHUNKS_REPORTED);
    return {
      requestsPerSec: perSec(this.requests),
      readBytesPerSec: perSec(this.readBytes),
      writeBytesPerSec: perSec(this.writeBytes),
      latencyP50Ms: this.percentile(0.5, now),
      latencyP99Ms: this.percentile(0.99, now),
      sequentialShare: requests > 0 ? Math.min(1, this.sequential.at(now, h) / requests) : 0,
      readShare: requests > 0 ? Math.min(1, this.reads.at(now, h) / requests) : 0,
      hotChunks,
    };
  }

  private percentile(q: number, now: number): number {
    const counts = this.latency.map((d) => d.at(now, this.halfLifeMs));
    const total = counts.reduce((a, b) => a + b, 0);
    if (total <= 0) return 0;
    let seen = 0;
    for (const [i, count] of counts.entries()) {
      seen += count;
      if (seen >= q * total) return LATENCY.baseMs * LATENCY.growth ** i;
    }
    return LATENCY.baseMs * LATENCY.growth ** (LATENCY.buckets - 1);
  }

  private forgetColdest(now: number): void {
    let coldest: { key: string; value: number } | undefined;
    for (const [key, c] of this.chunks) {
      const value = c.requests.at(now, this.halfLifeMs);
      if (coldest === undefined || value < coldest.value) coldest = { key, value };
    }
    if (coldest !== undefined) this.chunks.delete(coldest.key);
  }
}

function bucketOf(latencyMs: number): number {
  if (!(latencyMs > LATENCY.baseMs)) return 0;
  const i = Math.ceil(Math.log(latencyMs / LATENCY.baseMs) / Math.log(LATENCY.growth));
  return Math.min(LATENCY.buckets - 1, i);
}
