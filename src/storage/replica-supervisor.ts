/**
 * Watches storage servers and restores replication: a server missing from the registry for longer
 * than the grace period is declared dead, and every chunk it held gets a new replica copied from a
 * surviving one (the dead server leaves the route in the same step). Progress is counted and logged,
 * and visible to anyone through the store (chunks whose route is short of its factor).
 */
import { type Logger, pino } from "pino";
import type { CoordinationStore } from "../store/index.ts";
import { type Clock, systemClock } from "../util/clock.ts";
import { type DeadServer, deadServerSchema, encodeRecord, keys } from "./catalog.ts";
import {
  allocatedFromCensus,
  type ChunkCensus,
  chunkTag,
  liveActiveReplicas,
  takeCensus,
} from "./chunk-census.ts";
import type { ChunkMover, MovePlan } from "./chunk-mover.ts";
import { chooseTarget } from "./placement.ts";
import { updateRoute } from "./routing.ts";
import type { ServerRegistry } from "./server-registry.ts";
import type { TierEventSink } from "./tier-events.ts";
import { runBounded } from "./volumes.ts";

export interface ReplicaSupervisorOptions {
  readonly store: CoordinationStore;
  readonly registry: ServerRegistry;
  readonly mover: ChunkMover;
  /** How long a server may be missing before it is declared dead. */
  readonly graceMs?: number;
  /** How often the supervisor looks. */
  readonly intervalMs?: number;
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Told of servers declared dead and of re-replication passes (for the cluster's event stream). */
  readonly onEvent?: TierEventSink;
}

export interface RepairProgress {
  /** Chunks with fewer live active replicas than their volume's factor, at the last look. */
  readonly underReplicated: number;
  /** Chunks whose last replica is on a dead server: unreadable until it returns. */
  readonly unavailable: number;
  readonly repaired: number;
  readonly failed: number;
}

export const STORAGE_GRACE_MS_DEFAULT = 10_000;
/** Route updates in flight at once when dead servers leave the routes. */
const ROUTE_UPDATES_IN_FLIGHT_MAX = 32;

export class ReplicaSupervisor implements AsyncDisposable {
  private readonly missingSince = new Map<string, number>();
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly graceMs: number;
  private timer: Disposable | undefined;
  private registryWatch: Disposable | undefined;
  private again = false;
  private closed = false;
  private running: Promise<void> | undefined;
  private counts = { underReplicated: 0, unavailable: 0, repaired: 0, failed: 0 };
  private readonly options: ReplicaSupervisorOptions;

  constructor(options: ReplicaSupervisorOptions) {
    this.options = options;
    this.clock = options.clock ?? systemClock;
    this.graceMs = options.graceMs ?? STORAGE_GRACE_MS_DEFAULT;
    this.log = (options.logger ?? pino({ level: "silent" })).child({ component: "replica-supervisor" });
  }

  start(): void {
    this.timer ??= this.clock.every(this.options.intervalMs ?? 1000, () => this.kick());
    // A server leaving is looked at at once, not at the next interval: writes may be waiting on it.
    this.registryWatch ??= this.options.registry.onChange(() => this.kick());
    // A new master's supervisor looks at once: a server may have died with the previous master.
    this.kick();
  }

  /** Runs a pass now, or right after the one running (which may have read the registry too early). */
  private kick(): void {
    if (this.closed) return;
    if (this.running !== undefined) {
      this.again = true;
      return;
    }
    this.running = this.tick()
      .catch((error: unknown) => this.log.error({ err: error }, "supervisor pass failed"))
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  progress(): RepairProgress {
    return { ...this.counts };
  }

  /** One pass: declare servers dead past their grace, then repair what is short of replicas. */
  async tick(): Promise<void> {
    const { store, registry } = this.options;
    let census = await takeCensus(store);
    const now = this.clock.monotonicMs();
    const named = new Set(census.chunks.flatMap((c) => c.route.replicas.map((r) => r.serverId)));
    for (const serverId of named) {
      if (registry.isAlive(serverId) || census.dead.has(serverId)) {
        this.missingSince.delete(serverId);
        continue;
      }
      const since = this.missingSince.get(serverId) ?? now;
      this.missingSince.set(serverId, since);
      if (now - since < this.graceMs && this.timer !== undefined) {
        // Look again the moment its grace runs out.
        setTimeout(() => this.kick(), since + this.graceMs - now + 1).unref();
      }
      if (now - since >= this.graceMs) {
        const record: DeadServer = { serverId, declaredAtMs: Date.now() };
        await store.put(keys.dead(serverId), encodeRecord(deadServerSchema, record));
        this.log.error(
          { serverId, missingMs: now - since },
          "storage server declared dead; re-replicating its chunks",
        );
        this.options.onEvent?.({
          kind: "repair",
          cause: "server-dead",
          subject: serverId,
          reason: `storage server ${serverId} left the registry and stayed away past its grace (${this.graceMs} ms): declared dead, its chunks get new replicas`,
          details: { missingMs: now - since },
        });
        census = await takeCensus(store);
      }
    }
    if (census.dead.size > 0 && (await this.dropDeadReplicas(census)) > 0) census = await takeCensus(store);
    await this.repair(census);
  }

  /**
   * Takes dead servers out of every route that has a live active replica left, at once: writes stalled
   * on the dead server go on with the survivors instead of waiting for their chunk's turn to be
   * re-replicated. A chunk whose every copy is on dead servers keeps its route: it returns with them.
   */
  private async dropDeadReplicas(census: ChunkCensus): Promise<number> {
    const affected = census.chunks.filter(
      (entry) =>
        entry.route.replicas.some((r) => census.dead.has(r.serverId)) &&
        liveActiveReplicas(entry, census.dead).length > 0,
    );
    // Each chunk's route is its own key: writes to all of them are waiting, so update them side by side.
    await runBounded(affected.length, ROUTE_UPDATES_IN_FLIGHT_MAX, async (i) => {
      const entry = affected[i]!;
      await updateRoute(this.options.store, entry.volume.volumeId, entry.chunkIndex, (route) => {
        const live = route.replicas.filter((r) => !census.dead.has(r.serverId));
        return live.some((r) => r.state === "active") ? { replicas: live } : route;
      });
    });
    const dropped = affected.length;
    if (dropped > 0) this.log.warn({ chunks: dropped }, "dead servers taken out of routes");
    return dropped;
  }

  private async repair(census: ChunkCensus): Promise<void> {
    const { registry, mover } = this.options;
    const allocated = allocatedFromCensus(census);
    const spaces = registry.servers().map((s) => ({
      serverId: s.serverId,
      capacityBytes: s.capacityBytes,
      allocatedBytes: allocated.get(s.serverId) ?? 0,
    }));
    const plans: MovePlan[] = [];
    let unavailable = 0;
    let underReplicated = 0;
    for (const entry of census.chunks) {
      const live = liveActiveReplicas(entry, census.dead);
      const deadReplica = entry.route.replicas.find((r) => census.dead.has(r.serverId));
      if (deadReplica === undefined && live.length >= entry.volume.replicationFactor) continue;
      underReplicated++;
      const from = live[0];
      if (from === undefined) {
        unavailable++;
        continue;
      }
      if (census.moving.has(chunkTag(entry.volume.volumeId, entry.chunkIndex))) continue;
      const excluded = new Set([
        ...entry.route.replicas.map((r) => r.serverId),
        ...census.dead,
        ...census.draining,
      ]);
      const to = chooseTarget(spaces, excluded, entry.chunkBytes);
      if (to === undefined) {
        this.log.error(
          { volumeId: entry.volume.volumeId, chunkIndex: entry.chunkIndex },
          "no server has room for a new replica",
        );
        continue;
      }
      const space = spaces.find((s) => s.serverId === to);
      if (space !== undefined)
        Object.assign(space, { allocatedBytes: space.allocatedBytes + entry.chunkBytes });
      plans.push({
        volumeId: entry.volume.volumeId,
        chunkIndex: entry.chunkIndex,
        from,
        to,
        reason: "re-replicate",
        keepSource: true,
        ...(deadReplica === undefined ? {} : { drop: deadReplica.serverId }),
      });
    }
    this.counts = { ...this.counts, underReplicated, unavailable };
    if (unavailable > 0)
      this.log.error({ unavailable }, "chunks have no live replica; they return with their server");
    if (plans.length === 0) {
      await this.forgetRepairedDead(census);
      return;
    }
    this.log.info({ chunks: plans.length }, "re-replicating");
    this.options.onEvent?.({
      kind: "repair",
      cause: "re-replicating",
      subject: volumesOf(plans),
      reason: `${plans.length} chunks are short of a replica (or have one on a dead server): copying them to servers with room`,
      details: { chunks: plans.length, unavailable },
    });
    const results = await Promise.allSettled(plans.map((plan) => mover.move(plan)));
    for (const [i, result] of results.entries()) {
      if (result.status === "fulfilled") this.counts.repaired++;
      else {
        this.counts.failed++;
        this.log.error(
          { err: result.reason, plan: plans[i] },
          "re-replication of a chunk failed; will retry",
        );
      }
    }
    this.log.info({ ...this.counts }, "re-replication pass done");
    const failed = results.filter((r) => r.status === "rejected").length;
    this.options.onEvent?.({
      kind: "repair",
      cause: "re-replicated",
      subject: volumesOf(plans),
      reason: `re-replicated ${plans.length - failed} of ${plans.length} chunks short of a replica${failed > 0 ? ` (${failed} failed; retried next pass)` : ""}`,
      details: { chunks: plans.length, failed },
    });
  }

  /**
   * A dead server no route names any more is forgotten: if it comes back, it is a server like any other
   * (what it still stores is garbage; nothing routes to it).
   */
  private async forgetRepairedDead(census: ChunkCensus): Promise<void> {
    for (const serverId of census.dead) {
      const named = census.chunks.some((c) => c.route.replicas.some((r) => r.serverId === serverId));
      if (!named) {
        await this.options.store.delete(keys.dead(serverId));
        this.log.info({ serverId }, "dead server fully replaced");
        this.options.onEvent?.({
          kind: "repair",
          cause: "replaced",
          subject: serverId,
          reason: `dead storage server ${serverId} is fully replaced: no route names it any more`,
        });
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.timer?.[Symbol.dispose]();
    this.timer = undefined;
    this.registryWatch?.[Symbol.dispose]();
    this.registryWatch = undefined;
    await this.running;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** The volumes of some moves, for an event's subject (clipped to its bound). */
function volumesOf(plans: readonly MovePlan[]): string {
  return [...new Set(plans.map((p) => p.volumeId))].join(",").slice(0, 128);
}
