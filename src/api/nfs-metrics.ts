/**
 * The NFS calls of every vserver this process serves, for /metrics. The call path only increments
 * plain numbers (ProcedureMetrics, src/nfs/metrics.ts); prom-client reads them at scrape time, so
 * a scrape costs the calls nothing. One ProcedureMetrics per vserver id for the life of the process:
 * a vserver that restarts, or moves between nodes of one process (`cluster up`), keeps counting on
 * the same series, so counters never go back while the process lives.
 *
 * Labels are the vserver id and the procedure name only: a bounded set (vservers this process
 * served, at most VSERVERS_TRACKED_MAX; 22 NFS procedures and 6 MOUNT ones).
 */
import { Histogram, type Registry } from "prom-client";
import { LATENCY_BUCKETS_MS, ProcedureMetrics, type ProcedureStats } from "../nfs/metrics.ts";
import { collected } from "./collected.ts";

/** Vservers counted at once; past it the one not served longest is forgotten (its series reset). */
export const VSERVERS_TRACKED_MAX = 4096;

const LATENCY_NAME = "flotilla_nfs_call_duration_seconds";

/** A sample as prom-client's registry formats it. */
interface PromSample {
  readonly metricName: string;
  readonly labels: Record<string, string | number>;
  readonly sharedLabels: Record<string, string | number>;
  readonly value: number;
}

declare module "prom-client" {
  interface Histogram<T extends string = string> {
    /**
     * What prom-client's registry formats a histogram from, and its `get` (JSON) reads: in its
     * code, not in its type declarations.
     */
    getForPromString(): Promise<{ values: PromSample[] }>;
  }
}

/**
 * A histogram whose buckets are the sums of every vserver's, read when scraped: nothing is ever
 * observed into prom-client's own buckets; the samples it formats are replaced by the sums.
 */
class ProcedureLatency extends Histogram<"procedure"> {
  private readonly source: () => Map<string, ProcedureStats>;

  constructor(registry: Registry, source: () => Map<string, ProcedureStats>) {
    super({
      name: LATENCY_NAME,
      help: "Time from an NFS or MOUNT call's arrival to its reply, by procedure (every vserver of this process)",
      labelNames: ["procedure"],
      buckets: LATENCY_BUCKETS_MS.map((ms) => ms / 1000),
      registers: [registry],
    });
    this.source = source;
  }

  override async getForPromString(): Promise<{ values: PromSample[] }> {
    const base = await super.getForPromString();
    return { ...base, values: this.values() };
  }

  private values(): PromSample[] {
    const values: PromSample[] = [];
    const sharedLabels = {};
    const bucket = `${LATENCY_NAME}_bucket`;
    for (const [procedure, stats] of [...this.source()].sort(([a], [b]) => a.localeCompare(b))) {
      let cumulative = 0;
      for (const [i, ms] of LATENCY_BUCKETS_MS.entries()) {
        cumulative += stats.buckets[i] ?? 0;
        values.push({
          metricName: bucket,
          labels: { le: ms / 1000, procedure },
          sharedLabels,
          value: cumulative,
        });
      }
      values.push({
        metricName: bucket,
        labels: { le: "+Inf", procedure },
        sharedLabels,
        value: stats.calls,
      });
      const sum = stats.sumMs / 1000;
      values.push({ metricName: `${LATENCY_NAME}_sum`, labels: { procedure }, sharedLabels, value: sum });
      values.push({
        metricName: `${LATENCY_NAME}_count`,
        labels: { procedure },
        sharedLabels,
        value: stats.calls,
      });
    }
    return values;
  }
}

export class NfsMetrics {
  /** In order of last use, oldest first (a Map keeps insertion order). */
  private readonly byVserver = new Map<string, ProcedureMetrics>();

  /** The counters a vserver's runtime records into (the same object every time for one id). */
  readonly forVserver = (vserverId: string): ProcedureMetrics => {
    let metrics = this.byVserver.get(vserverId);
    if (metrics !== undefined) this.byVserver.delete(vserverId);
    else metrics = new ProcedureMetrics();
    this.byVserver.set(vserverId, metrics);
    while (this.byVserver.size > VSERVERS_TRACKED_MAX) {
      const oldest = this.byVserver.keys().next().value;
      if (oldest === undefined) break;
      this.byVserver.delete(oldest);
    }
    return metrics;
  };

  /** Every vserver's procedures: (vserver, procedure, stats). */
  private *rows(): Generator<[string, string, ProcedureStats]> {
    for (const [vserver, metrics] of this.byVserver)
      for (const [procedure, stats] of Object.entries(metrics.snapshot())) yield [vserver, procedure, stats];
  }

  /** Each procedure's stats summed over the vservers. */
  private byProcedure(): Map<string, ProcedureStats> {
    const sums = new Map<string, ProcedureStats>();
    for (const [, procedure, stats] of this.rows()) {
      const sum = sums.get(procedure);
      if (sum === undefined) {
        sums.set(procedure, { ...stats, buckets: [...stats.buckets] });
        continue;
      }
      sum.calls += stats.calls;
      sum.errors += stats.errors;
      sum.sumMs += stats.sumMs;
      for (const [i, n] of stats.buckets.entries()) sum.buckets[i] = (sum.buckets[i] ?? 0) + n;
    }
    return sums;
  }

  register(registry: Registry): void {
    const procedures = (field: "calls" | "errors") => () =>
      [...this.rows()].map(([vserver, procedure, stats]) => [{ vserver, procedure }, stats[field]] as const);
    const bytes = (field: "bytesReceived" | "bytesSent") => () =>
      [...this.byVserver].map(([vserver, metrics]) => [{ vserver }, metrics[field]] as const);
    const labelNames = ["vserver", "procedure"] as const;
    collected("counter", {
      registry,
      name: "flotilla_nfs_calls_total",
      help: "NFS and MOUNT calls answered, by vserver and procedure (MOUNT ones named MOUNT.*)",
      labelNames,
      samples: procedures("calls"),
    });
    collected("counter", {
      registry,
      name: "flotilla_nfs_errors_total",
      help: "NFS calls answered with an error status (NFS3ERR_*), by vserver and procedure",
      labelNames,
      samples: procedures("errors"),
    });
    collected("counter", {
      registry,
      name: "flotilla_nfs_received_bytes_total",
      help: "Bytes of NFS call arguments received (WRITE data included), by vserver",
      labelNames: ["vserver"],
      samples: bytes("bytesReceived"),
    });
    collected("counter", {
      registry,
      name: "flotilla_nfs_sent_bytes_total",
      help: "Bytes of NFS results sent (READ data included), by vserver",
      labelNames: ["vserver"],
      samples: bytes("bytesSent"),
    });
    new ProcedureLatency(registry, () => this.byProcedure());
  }
}
