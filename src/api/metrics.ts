/**
 * What GET /metrics answers, in Prometheus's text format (prom-client):
 *
 * - this process: the NFS calls of the vservers its nodes serve (nfs-metrics.ts), and Node's own
 *   process metrics (CPU, memory, event-loop lag);
 * - the whole cluster, read from the coordination store at scrape time, the same from every admin
 *   API: each storage server's load as its monitor last published it, and the events recorded so far
 *   by kind and cause (failovers, moves, fences, repairs, balancing), counted in the event ring's head
 *   so they never go back when the ring trims.
 *
 * Labels: vserver, procedure, storage server id, event kind and cause: all bounded sets.
 */
import type { Logger } from "pino";
import { collectDefaultMetrics, Registry } from "prom-client";
import type { EventHead } from "../cluster/event-record.ts";
import { readHead } from "../cluster/event-ring.ts";
import type { ServerLoadRecord } from "../storage/catalog.ts";
import { measureLoads } from "../storage/load-measure.ts";
import { readLoadRecords } from "../storage/tier-status.ts";
import type { CoordinationStore } from "../store/index.ts";
import { collected } from "./collected.ts";
import type { NfsMetrics } from "./nfs-metrics.ts";

/** What one scrape read from the store (undefined: the store could not be read). */
interface ClusterReading {
  readonly loads: readonly ServerLoadRecord[];
  readonly head: EventHead;
}

/** Per storage server gauges: name, help, the value from its load record. */
const STORAGE_GAUGES: readonly [string, string, (load: ServerLoadRecord) => number][] = [
  ["requests_per_second", "Requests per second (decaying rate, 10 s half-life)", (l) => l.requestsPerSec],
  ["read_bytes_per_second", "Bytes read per second", (l) => l.readBytesPerSec],
  ["write_bytes_per_second", "Bytes written per second", (l) => l.writeBytesPerSec],
  ["latency_p50_seconds", "Median request latency", (l) => l.latencyP50Ms / 1000],
  ["latency_p99_seconds", "99th percentile request latency", (l) => l.latencyP99Ms / 1000],
  ["requests_in_flight", "Requests being served", (l) => l.requestsInFlight],
  ["cpu_busy_ratio", "Share of its cores kept busy (0..1)", (l) => l.cpuBusy],
  ["network_in_bytes_per_second", "Socket bytes received per second", (l) => l.networkInBytesPerSec],
  ["network_out_bytes_per_second", "Socket bytes sent per second", (l) => l.networkOutBytesPerSec],
  ["capacity_bytes", "Space it offers the cluster", (l) => l.capacityBytes],
  ["used_bytes", "Space its chunks take", (l) => l.usedBytes],
];

export class AdminMetrics {
  readonly registry = new Registry();
  private reading: ClusterReading | undefined;
  private readonly store: CoordinationStore;
  private readonly log: Logger;

  constructor(store: CoordinationStore, nfs: NfsMetrics | undefined, log: Logger) {
    this.store = store;
    this.log = log;
    collectDefaultMetrics({ register: this.registry, prefix: "flotilla_" });
    nfs?.register(this.registry);
    this.registerStorage();
    this.registerEvents();
    collected("gauge", {
      registry: this.registry,
      name: "flotilla_store_up",
      help: "1 if this scrape could read the coordination store (the cluster-wide metrics come from it)",
      labelNames: [],
      samples: () => [[{}, this.reading === undefined ? 0 : 1]],
    });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The metrics as text: reads the store once, then formats everything. */
  async text(): Promise<string> {
    try {
      const [loads, { head }] = await Promise.all([
        readLoadRecords(this.store, this.log),
        readHead(this.store),
      ]);
      this.reading = { loads, head };
    } catch (error) {
      this.log.warn({ err: error }, "metrics: cannot read the store; cluster-wide metrics left out");
      this.reading = undefined;
    }
    return this.registry.metrics();
  }

  private registerStorage(): void {
    const registry = this.registry;
    const loads = (): readonly ServerLoadRecord[] => this.reading?.loads ?? [];
    for (const [suffix, help, value] of STORAGE_GAUGES)
      collected("gauge", {
        registry,
        name: `flotilla_storage_${suffix}`,
        help: `Storage server: ${help}, as its load monitor last published it`,
        labelNames: ["server"],
        samples: () => loads().map((load) => [{ server: load.serverId }, value(load)] as const),
      });
    collected("gauge", {
      registry,
      name: "flotilla_storage_load_measure",
      help: "Storage server: the balancer's load measure (1 = its fair share of the group); see README",
      labelNames: ["server"],
      samples: () => measureLoads(loads()).map((m) => [{ server: m.serverId }, m.measure] as const),
    });
    collected("gauge", {
      registry,
      name: "flotilla_storage_hot",
      help: "Storage server: 1 while it serves more than 1.5x the group's mean request rate",
      labelNames: ["server"],
      samples: () => measureLoads(loads()).map((m) => [{ server: m.serverId }, m.hot ? 1 : 0] as const),
    });
  }

  private registerEvents(): void {
    const registry = this.registry;
    const counts = (): [string, string, number][] =>
      Object.entries(this.reading?.head.counts ?? {}).map(([key, n]) => {
        const slash = key.indexOf("/");
        return [key.slice(0, slash), key.slice(slash + 1), n];
      });
    collected("counter", {
      registry,
      name: "flotilla_events_total",
      help: "Cluster events recorded since the store was made, by kind and cause (flotilla events lists them)",
      labelNames: ["kind", "cause"],
      samples: () => counts().map(([kind, cause, n]) => [{ kind, cause }, n] as const),
    });
    collected("counter", {
      registry,
      name: "flotilla_failovers_total",
      help: "Vservers failed over off a dead node, by cause",
      labelNames: ["cause"],
      samples: () =>
        counts().flatMap(([kind, cause, n]) => (kind === "failover" ? [[{ cause }, n] as const] : [])),
    });
    collected("counter", {
      registry,
      name: "flotilla_vserver_moves_total",
      help: "Vservers moved off a live node, by cause (drain, unreachable, operator; live: live moves done)",
      labelNames: ["cause"],
      samples: () =>
        counts().flatMap(([kind, cause, n]) =>
          kind === "move"
            ? [[{ cause }, n] as const]
            : kind === "live-move" && cause === "moved"
              ? [[{ cause: "live" }, n] as const]
              : [],
        ),
    });
    collected("gauge", {
      registry,
      name: "flotilla_events_last_seq",
      help: "Sequence number of the newest event (GET /v1/events?since=N pages from it)",
      labelNames: [],
      samples: () => [[{}, this.reading === undefined ? 0 : this.reading.head.next - 1]],
    });
  }
}
