/** Latency bucket upper bounds, in milliseconds. */
export const LATENCY_BUCKETS_MS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500] as const;

export interface ProcedureStats {
  calls: number;
  errors: number;
  sumMs: number;
  /** Counts per bucket of LATENCY_BUCKETS_MS, and one more for slower calls. */
  readonly buckets: number[];
}

/**
 * Per-procedure counters and latency histograms, in memory, and the bytes of arguments received and
 * results sent: plain increments on the call path; a metrics endpoint reads snapshots.
 */
export class ProcedureMetrics {
  private readonly stats = new Map<string, ProcedureStats>();
  bytesReceived = 0;
  bytesSent = 0;

  record(procedure: string, durationMs: number, failed: boolean, bytesIn = 0, bytesOut = 0): void {
    this.bytesReceived += bytesIn;
    this.bytesSent += bytesOut;
    let s = this.stats.get(procedure);
    if (s === undefined) {
      s = {
        calls: 0,
        errors: 0,
        sumMs: 0,
        buckets: new Array<number>(LATENCY_BUCKETS_MS.length + 1).fill(0),
      };
      this.stats.set(procedure, s);
    }
    s.calls++;
    if (failed) s.errors++;
    s.sumMs += durationMs;
    let i = 0;
    while (i < LATENCY_BUCKETS_MS.length && durationMs > LATENCY_BUCKETS_MS[i]!) i++;
    s.buckets[i]!++;
  }

  snapshot(): Record<string, ProcedureStats> {
    const out: Record<string, ProcedureStats> = {};
    for (const [name, s] of this.stats) out[name] = { ...s, buckets: [...s.buckets] };
    return out;
  }
}
