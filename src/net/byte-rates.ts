/**
 * Bytes per second from byte counters sampled now and then (a port's rx+tx, a VIP's listeners'),
 * decayed so that half an estimate's weight is its last `halfLifeMs`: one busy second does not make a
 * port hot, and a VIP that went quiet cools off within a few half-lives. A counter that went back
 * (its source restarted) starts over from its new value.
 */
export const BYTE_RATE_HALF_LIFE_MS = 5000;

export class ByteRates {
  private readonly halfLifeMs: number;
  private readonly last = new Map<string, { bytes: number; atMs: number; rate: number }>();

  constructor(halfLifeMs = BYTE_RATE_HALF_LIFE_MS) {
    this.halfLifeMs = halfLifeMs;
  }

  /** Folds each counter's value now into its rate; counters not in `counts` are forgotten. */
  sample(counts: ReadonlyMap<string, number>, nowMs: number): void {
    for (const key of [...this.last.keys()]) if (!counts.has(key)) this.last.delete(key);
    for (const [key, bytes] of counts) this.fold(key, bytes, nowMs);
  }

  /** Folds one counter's value now into its rate. */
  fold(key: string, bytes: number, nowMs: number): number {
    const before = this.last.get(key);
    let rate = before?.rate ?? 0;
    if (before !== undefined && nowMs > before.atMs && bytes >= before.bytes) {
      const instant = ((bytes - before.bytes) * 1000) / (nowMs - before.atMs);
      const keep = 0.5 ** ((nowMs - before.atMs) / this.halfLifeMs);
      rate = keep * rate + (1 - keep) * instant;
    }
    this.last.set(key, { bytes, atMs: nowMs, rate });
    return rate;
  }

  /** The rate of `key` in bytes/s (0 before its second sample). */
  rate(key: string): number {
    return this.last.get(key)?.rate ?? 0;
  }
}
