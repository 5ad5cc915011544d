/**
 * The master's work while it holds its term: watch the cluster, run the pure planner on every change
 * (and on a tick, for settle and cooldown timers), and write the placements it proposes. Each write is
 * a compare-and-swap on the placement's revision and on the master's term, so a stale plan or a
 * deposed master never lands.
 *
 * Liveness history (when a node's lease appeared or vanished, whether it ever died) is not in the
 * store: the master learns it from lease events. A new master starts without it and treats every node
 * alive at takeover as settled, every absent one as dead since the takeover.
 */
import type { Logger } from "pino";
import type { SubnetRoute } from "../net/model.ts";
import { encodeRecord } from "../storage/catalog.ts";
import { runBounded } from "../storage/volumes.ts";
import type { Compare, CoordinationStore } from "../store/index.ts";
import { type Clock, systemClock } from "../util/clock.ts";
import {
  clusterKeys,
  migrationRecordSchema,
  NODES_PREFIX,
  type PlacementRecord,
  placementRecordSchema,
} from "./catalog.ts";
import { type ClusterSnapshot, ClusterView, type ViewChange } from "./cluster-view.ts";
import { recordEvents } from "./event-log.ts";
import { newMigration } from "./live-move.ts";
import { drainMoveKind, type LiveMoveWish, memoryPressureMoves } from "./live-move-policy.ts";
import { termCompare } from "./master-election.ts";
import { nodeEvent, planEvents } from "./master-events.ts";
import type { ClusterNode, ClusterState, NodeRole, PlannerPolicy, Vserver } from "./model.ts";
import { plannedRoutes, withoutRoutedSubnets } from "./network-view.ts";
import { applyPlan, PLANNER_POLICY_DEFAULT, plan } from "./planner.ts";
import { defaultGraceMs, ReachMemory, vserverRequires } from "./reach.ts";
import { writeRoutes } from "./route-writer.ts";

export interface MasterOptions {
  readonly store: CoordinationStore;
  readonly nodeId: string;
  readonly term: number;
  readonly policy?: PlannerPolicy;
  /**
   * While this node itself has been up for less than this, the master leaves alone a node it has
   * never seen alive: at a cluster start nodes join over some seconds, and their vservers must not be
   * failed over meanwhile. Such a node counts as alive but disabled (keeps its vservers, receives
   * none). A master elected on a node that has long been up (the old master died) waits for nobody.
   */
  readonly takeoverGraceMs: number;
  /** When this node started (wall clock ms); default: now. */
  readonly nodeStartedAtMs?: number;
  /** How often the master plans even without a change (timers: settle, cooldown). */
  readonly tickMs?: number;
  /**
   * The storage servers holding each volume's chunks (from a census kept by the caller), so a
   * vserver goes only where they are all reached; undefined: storage paths are not considered.
   */
  readonly storageServersOf?: (volumeId: string) => readonly string[] | undefined;
  /** How long a node must have lost a subnet or storage server before its vservers move for it. */
  readonly reachLossGraceMs?: number;
  readonly clock?: Clock;
  readonly logger: Logger;
}

interface Liveness {
  alive: boolean;
  sinceMs: number;
  hasDied: boolean;
  /** Absent when this master took over, and not seen alive since. */
  neverSeen: boolean;
}

/** Placement writes in flight at once. */
const WRITES_IN_FLIGHT_MAX = 16;
const TICK_MS_DEFAULT = 500;

export class Master implements AsyncDisposable {
  private view: ClusterView | undefined;
  private readonly liveness = new Map<string, Liveness>();
  private planning = false;
  private again = false;
  private closed = false;
  private timer: Disposable | undefined;
  private readonly options: MasterOptions;
  private readonly policy: PlannerPolicy;
  private readonly log: Logger;
  private readonly nodeStartedAtMs: number;
  private readonly reach: ReachMemory;
  /** Plans run and placements written, for status and tests. */
  readonly counters = {
    plans: 0,
    placementsWritten: 0,
    conflicts: 0,
    liveMovesRequested: 0,
    routesWritten: 0,
  };

  private constructor(options: MasterOptions) {
    this.options = options;
    this.policy = options.policy ?? PLANNER_POLICY_DEFAULT;
    this.nodeStartedAtMs = options.nodeStartedAtMs ?? Date.now();
    this.reach = new ReachMemory(options.reachLossGraceMs ?? defaultGraceMs);
    this.log = options.logger.child({ component: "master", term: options.term });
  }

  static async start(options: MasterOptions): Promise<Master> {
    const master = new Master(options);
    master.view = await ClusterView.follow(options.store, master.log, (changes) => master.onChange(changes));
    master.timer = (options.clock ?? systemClock).every(options.tickMs ?? TICK_MS_DEFAULT, () =>
      master.schedule(),
    );
    master.log.info("master started");
    master.schedule();
    return master;
  }

  private onChange(changes: readonly ViewChange[] | null): void {
    const nowMs = Date.now();
    const snapshot = this.view?.current;
    if (snapshot === undefined) return;
    if (changes === null) {
      for (const id of knownNodeIds(snapshot)) this.observe(id, snapshot.nodes.has(id), nowMs);
    } else {
      for (const change of changes) {
        if (change.key.startsWith(NODES_PREFIX))
          this.observe(change.key.slice(NODES_PREFIX.length), change.exists, nowMs);
      }
    }
    this.schedule();
  }

  private observe(nodeId: string, alive: boolean, nowMs: number): void {
    const known = this.liveness.get(nodeId);
    if (known === undefined) {
      this.liveness.set(nodeId, { alive, sinceMs: nowMs, hasDied: !alive, neverSeen: !alive });
      return;
    }
    if (known.alive === alive) return;
    known.alive = alive;
    known.neverSeen = false;
    known.sinceMs = nowMs;
    if (!alive) known.hasDied = true;
    this.log.info({ nodeId, alive }, alive ? "node joined" : "node lost its lease");
    recordEvents(this.options.store, [nodeEvent(nodeId, alive, this.options.nodeId, nowMs)], this.log);
  }

  private schedule(): void {
    if (this.closed) return;
    if (this.planning) {
      this.again = true;
      return;
    }
    this.planning = true;
    this.planAndWrite()
      .catch((error: unknown) => this.log.error({ err: error }, "planning pass failed"))
      .finally(() => {
        this.planning = false;
        if (this.again) {
          this.again = false;
          this.schedule();
        }
      });
  }

  /**
   * The planner's view of the cluster, built from the snapshot and the liveness history. A vserver
   * whose VIPs are routed through a router node (`routes`) does not require their subnet of its
   * node: its clients reach it there.
   */
  clusterState(snapshot: ClusterSnapshot, nowMs: number, routes: readonly SubnetRoute[] = []): ClusterState {
    const nodes: ClusterNode[] = [];
    const reachedByLive = new Set([...snapshot.nodes.values()].flatMap((record) => record.reaches));
    for (const id of knownNodeIds(snapshot)) {
      const record = snapshot.nodes.get(id);
      const live = this.liveness.get(id) ?? {
        alive: record !== undefined,
        sinceMs: nowMs,
        hasDied: false,
        neverSeen: record === undefined,
      };
      const roles: NodeRole[] = record === undefined ? ["filer"] : [...record.roles];
      const awaited =
        record === undefined && live.neverSeen && nowMs < this.nodeStartedAtMs + this.options.takeoverGraceMs;
      nodes.push({
        id,
        roles,
        alive: record !== undefined || awaited,
        sinceMs: Math.min(live.sinceMs, nowMs),
        hasDied: live.hasDied && !awaited,
        operatorState: awaited ? "disabled" : (snapshot.settings.get(id)?.operatorState ?? "enabled"),
        vserversMax: record?.vserversMax ?? 0,
        load: { loadPerCore: record?.loadPerCore ?? 0, memoryFreeBytes: record?.memoryFreeBytes ?? 0 },
        reaches: record === undefined ? [] : this.reach.effective(id, record.reaches, reachedByLive, nowMs),
      });
      if (record === undefined) this.reach.forget(id);
    }
    const serversOf = this.options.storageServersOf ?? (() => undefined);
    const vservers: Vserver[] = [];
    for (const [id, { record }] of snapshot.vservers) {
      const placement = snapshot.placements.get(id)?.record;
      vservers.push({
        id,
        name: record.name,
        priority: record.priority,
        pinned: record.pinned,
        vips: record.vips,
        volumes: record.volumes,
        requires: withoutRoutedSubnets(
          vserverRequires(record.vips, record.volumes, { reachedByLive, serversOf }),
          id,
          placement?.node ?? null,
          routes,
        ),
        placement: {
          node: placement?.node ?? null,
          generation: placement?.generation ?? 0,
          sinceMs: Math.min(placement?.sinceMs ?? nowMs, nowMs),
        },
        blocked: placement?.blocked ?? null,
      });
    }
    return { nodes, vservers };
  }

  private async planAndWrite(): Promise<void> {
    const snapshot = this.view?.current;
    if (snapshot === undefined || this.closed) return;
    const nowMs = Date.now();
    const routes = plannedRoutes(snapshot);
    const routeWrites = await writeRoutes(
      this.options.store,
      this.options.term,
      snapshot,
      routes,
      nowMs,
      this.log,
    );
    this.counters.routesWritten += routeWrites.written;
    this.counters.conflicts += routeWrites.conflicts;
    const state = this.clusterState(snapshot, nowMs, routes);
    const planned = plan(state, nowMs, this.policy);
    this.counters.plans++;
    // A drain off a live node moves running vservers live where it can (live-move-policy.ts): those
    // placements are the moving node's to write at its cutover, not the master's.
    const wishes: LiveMoveWish[] = [];
    // Nothing of a vserver moving live is written here: any write to its placement (a blocked reason
    // cleared, too) would fail the compare-and-swap of its cutover.
    const moving = new Set<string>();
    for (const action of planned) {
      if (action.kind !== "placement" || action.cause !== "drain") continue;
      if (action.from === null || action.to === null) continue;
      const kind = drainMoveKind(snapshot, action.vserverId, action.to, nowMs, this.policy.moveCooldownMs);
      if (kind === "cold") continue;
      moving.add(action.vserverId);
      if (kind === "live")
        wishes.push({
          vserverId: action.vserverId,
          from: action.from,
          to: action.to,
          force: true,
          cause: "drain",
        });
    }
    const actions = planned.filter((action) => !moving.has(action.vserverId));
    for (const wish of memoryPressureMoves(snapshot, nowMs, this.policy.moveCooldownMs))
      if (!moving.has(wish.vserverId) && !actions.some((a) => a.vserverId === wish.vserverId))
        wishes.push(wish);
    await runBounded(wishes.length, WRITES_IN_FLIGHT_MAX, (i) =>
      this.requestLiveMove(snapshot, wishes[i]!, nowMs),
    );
    if (actions.length === 0) return;
    const next = applyPlan(state, actions, nowMs);
    const changed = next.vservers.filter((vserver, i) => vserver !== state.vservers[i]);
    for (const action of actions) {
      if (action.kind === "placement")
        this.log.info(
          {
            vserverId: action.vserverId,
            from: action.from,
            to: action.to,
            generation: action.generation,
            cause: action.cause,
          },
          "placement",
        );
    }
    const written = new Set<string>();
    await runBounded(changed.length, WRITES_IN_FLIGHT_MAX, async (i) => {
      const vserver = changed[i]!;
      if (await this.writePlacement(snapshot, vserver)) written.add(vserver.id);
    });
    recordEvents(
      this.options.store,
      planEvents(state, actions, written, this.options.nodeId, nowMs),
      this.log,
    );
  }

  /**
   * Asks the vserver's node for a live move (the record an operator's `vserver move --live` writes),
   * if the placement and the move record are still the ones planned from and this master still rules.
   */
  private async requestLiveMove(snapshot: ClusterSnapshot, wish: LiveMoveWish, nowMs: number): Promise<void> {
    const key = clusterKeys.migration(wish.vserverId);
    const known = snapshot.migrations.get(wish.vserverId);
    const placement = snapshot.placements.get(wish.vserverId);
    if (placement === undefined) return;
    const record = newMigration(wish.from, wish.to, wish.force, nowMs);
    const result = await this.options.store.txn(
      [
        termCompare(this.options.term),
        { key: clusterKeys.placement(wish.vserverId), target: "mod", equals: placement.modRevision },
        known === undefined
          ? { key, target: "create", equals: 0 }
          : { key, target: "mod", equals: known.modRevision },
      ],
      [{ op: "put", key, value: encodeRecord(migrationRecordSchema, record) }],
    );
    if (!result.succeeded) {
      this.counters.conflicts++;
      return;
    }
    this.counters.liveMovesRequested++;
    this.log.info({ ...wish, requestId: record.requestId }, "live move requested");
  }

  private async writePlacement(snapshot: ClusterSnapshot, vserver: Vserver): Promise<boolean> {
    const key = clusterKeys.placement(vserver.id);
    const known = snapshot.placements.get(vserver.id);
    const record: PlacementRecord = {
      node: vserver.placement.node,
      generation: vserver.placement.generation,
      sinceMs: vserver.placement.sinceMs,
      blocked:
        vserver.blocked?.code === "unreachable"
          ? { code: "unreachable", missing: [...vserver.blocked.missing] }
          : vserver.blocked,
      // Kept while the generation is the live move's: only its reason to wait changed.
      liveMove: known?.record.generation === vserver.placement.generation ? known.record.liveMove : null,
    };
    const vserverModRevision = snapshot.vservers.get(vserver.id)?.modRevision ?? 0;
    const compares: Compare[] = [
      termCompare(this.options.term),
      // The vserver is unchanged (and not deleted) since the plan.
      { key: clusterKeys.vserver(vserver.id), target: "mod", equals: vserverModRevision },
      known === undefined
        ? { key, target: "create", equals: 0 }
        : { key, target: "mod", equals: known.modRevision },
    ];
    const result = await this.options.store.txn(compares, [
      { op: "put", key, value: encodeRecord(placementRecordSchema, record) },
    ]);
    if (result.succeeded) this.counters.placementsWritten++;
    else this.counters.conflicts++;
    return result.succeeded;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.timer?.[Symbol.dispose]();
    await this.view?.close();
    this.log.info("master stopped");
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Every node the cluster knows: with a lease, with settings, or named by a placement. */
function knownNodeIds(snapshot: ClusterSnapshot): string[] {
  const ids = new Set<string>([...snapshot.nodes.keys(), ...snapshot.settings.keys()]);
  for (const { record } of snapshot.placements.values()) if (record.node !== null) ids.add(record.node);
  return [...ids].sort();
}
