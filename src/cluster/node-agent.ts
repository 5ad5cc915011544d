/**
 * The node agent: reconciles this node towards the desired state. A vserver placed here is started
 * (its volume's owner epoch raised, which fences the previous owner at every storage server; the
 * file system mounted on the remote volume; NFS and MOUNT served on every VIP); a vserver placed
 * elsewhere, changed or deleted is stopped (listeners closed, calls in flight finished, committed,
 * unmounted). A node without its lease, or fenced, stops serving at once, without flushing.
 *
 * One task at a time per vserver; after each task the agent looks again, so a placement that changed
 * while a vserver was starting is acted on as soon as the start is done.
 */
import type { Logger } from "pino";
import type { BlockDeviceError } from "../block/index.ts";
import { RemoteBlockDevice } from "../block/remote-device.ts";
import { mkfs } from "../fs/index.ts";
import { parseExportRule } from "../nfs/exports.ts";
import type { ProcedureMetrics } from "../nfs/metrics.ts";
import { PagePool } from "../service/arena.ts";
import { MoveListener, type MoveManifest, type MoveOffer, MoveSender } from "../service/move-channel.ts";
import { SERVICE_PAGES_MAX_DEFAULT, ServiceState } from "../service/service-state.ts";
import { VserverRuntime } from "../service/vserver-runtime.ts";
import type { StorageClientSource } from "../storage/server-registry.ts";
import type { CoordinationStore, Lease } from "../store/index.ts";
import { assert } from "../util/assert.ts";
import {
  clusterKeys,
  decodeRecord,
  encodeRecord,
  filesystemRecordSchema,
  type RunningRecord,
  runningRecordSchema,
  type VserverRecord,
} from "./catalog.ts";
import { type ClusterSnapshot, ClusterView, type ViewChange } from "./cluster-view.ts";
import { placeVserver } from "./desired-state.ts";
import { recordEvents } from "./event-log.ts";
import type { EventInput } from "./event-record.ts";
import { HANDOVER_WAIT_MS_DEFAULT, type HolderClaim, releaseHolder, takeHolder } from "./handover.ts";
import {
  checkLiveMove,
  finalCopy,
  headroomPages,
  precopy,
  SUSPEND_DRAIN_MS,
  updateMigration,
} from "./live-move.ts";

export interface NodeAgentOptions {
  readonly store: CoordinationStore;
  readonly nodeId: string;
  readonly servers: StorageClientSource;
  /** The node's membership lease while held; the agent serves nothing without it. */
  readonly lease: () => Lease | undefined;
  readonly logger: Logger;
  /** How long a write keeps retrying an unreachable storage replica before it fails. */
  readonly stallMaxMs?: number;
  /** How long to wait between attempts to bind a VIP still held by a previous owner. */
  readonly bindRetryMs?: number;
  readonly cacheBytes?: number;
  /** How long a start waits for a live previous holder to hand over before fencing it (forced). */
  readonly handoverWaitMs?: number;
  /**
   * Live moves: the cluster secret that authenticates the move channel, and the address to take
   * moves on. Without them the node neither sends nor takes live moves.
   */
  readonly move?: {
    readonly secret: Uint8Array;
    readonly host: string;
    /** The pre-copy's bandwidth limit (0: none); the final copy, inside the stall, has none. */
    readonly precopyBytesPerSec?: number;
  };
  /** Where each vserver's NFS calls are counted (for /metrics); each runtime counts its own otherwise. */
  readonly nfsMetrics?: (vserverId: string) => ProcedureMetrics;
  /** Pages for every vserver's service state on this node (default 16 vservers' worth). */
  readonly statePagesMax?: number;
  /** The node's vserver slots (a live move is refused when they are all taken). */
  readonly vserversMax?: number;
  /**
   * Puts a vserver's VIPs on this node's ports before its listeners bind, and takes them off after
   * they closed (the Linux VIP driver; absent: loopback VIPs need nothing).
   */
  readonly vips?: {
    hold(vserverId: string, vips: readonly string[]): Promise<void>;
    release(vips: readonly string[]): Promise<void>;
    /** The vserver listens on its VIPs: tell their clients (announce, tickle the previous holder's). */
    serving(vserverId: string, vips: readonly string[]): Promise<void>;
    /** Publishes a vserver's client connections now (its stop begins), for the next holder's tickles. */
    publishConnectionsOf(vserverId: string): Promise<void>;
    /** Whether clients can reach these VIPs here (a good port on each one's subnet). */
    reachable(vips: readonly string[]): boolean;
    /** Whether this node has lost its path to some storage server (a flush could not finish). */
    storageCut(): boolean;
  };
  /** Called after every change the agent's view of the cluster sees (null: a fresh snapshot). */
  readonly onClusterChange?: (changes: readonly ViewChange[] | null) => void;
}

/** State moved in from another node, kept until the vserver starts here (or for a bounded time). */
interface Staged {
  readonly generation: number;
  /** The live move's request id (see MoveOffer.moveId). */
  readonly moveId: string;
  readonly from: string;
  readonly state: ServiceState;
  readonly timer: NodeJS.Timeout;
}

/** How long moved-in state waits for its vserver's start before it is dropped. */
const STAGED_TTL_MS = 30_000;

/** A vserver this node serves (or is starting or stopping). */
interface Served {
  readonly spec: VserverRecord;
  readonly generation: number;
  runtime: VserverRuntime | undefined;
  devices: RemoteBlockDevice[];
  fenced: boolean;
  /** This node's hold on the vserver's volumes, from before it fenced anyone until it let go. */
  holder: HolderClaim | undefined;
}

const BIND_RETRY_MS_DEFAULT = 250;
/** How long a stop waits at most to publish its clients' connections before it closes them. */
const PUBLISH_AT_STOP_MS = 300;
/** How long a stop waits for clients to close their connections when they cannot reach this node. */
const UNREACHABLE_CLOSE_MS = 200;
const STALL_MAX_MS_DEFAULT = 30_000;
const RETRY_MS_MIN = 500;
const RETRY_MS_MAX = 10_000;

export class NodeAgent implements AsyncDisposable {
  private view: ClusterView | undefined;
  private readonly served = new Map<string, Served>();
  private readonly tasks = new Map<string, Promise<void>>();
  /** Generations this node was fenced at: never started again (a newer owner holds the volume). */
  private readonly fencedAt = new Map<string, number>();
  /** Tasks that failed in a row, per vserver, and when to try again. */
  private readonly failures = new Map<string, { count: number; untilMs: number }>();
  private closed = false;
  /** Starts waiting for a handover, woken by every change the view hears of. */
  private readonly changeWaiters = new Set<() => void>();
  /** The node's service-state pages, shared by its vservers. */
  readonly pages: PagePool;
  private moveListener: MoveListener | undefined;
  private readonly staged = new Map<string, Staged>();
  /** Live-move requests this node has carried out (or refused), so each runs once. */
  private readonly migrationsSeen = new Set<string>();
  private readonly options: NodeAgentOptions;
  private readonly log: Logger;

  private constructor(options: NodeAgentOptions) {
    this.options = options;
    this.log = options.logger.child({ component: "agent", nodeId: options.nodeId });
    this.pages = new PagePool(options.statePagesMax ?? SERVICE_PAGES_MAX_DEFAULT * 16);
  }

  static async start(options: NodeAgentOptions): Promise<NodeAgent> {
    const agent = new NodeAgent(options);
    if (options.move !== undefined) {
      agent.moveListener = await MoveListener.listen(
        options.move.host,
        options.move.secret,
        {
          check: (offer) => agent.checkOffer(offer),
          stage: (offer, manifest, images) => agent.stage(offer, manifest, images),
        },
        agent.log,
      );
    }
    agent.view = await ClusterView.follow(options.store, agent.log, (changes) => {
      for (const wake of [...agent.changeWaiters]) wake();
      agent.reconcile();
      options.onClusterChange?.(changes);
    });
    agent.reconcile();
    return agent;
  }

  /** Looks at every vserver and starts the tasks that bring it where it should be. */
  reconcile(): void {
    if (this.closed || this.view === undefined) return;
    const ids = new Set([...this.view.current.vservers.keys(), ...this.served.keys()]);
    for (const id of ids) {
      if (this.tasks.has(id)) continue;
      const task = this.step(id);
      if (task === undefined) continue;
      this.tasks.set(
        id,
        task
          .catch((error: unknown) => this.backOff(id, error))
          .finally(() => {
            this.tasks.delete(id);
            this.reconcile();
          }),
      );
    }
  }

  /** Resolves at the next change of the cluster view, or after `ms`. */
  private nextChange(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.changeWaiters.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      timer.unref();
      this.changeWaiters.add(wake);
    });
  }

  /** A failed task is tried again after a growing delay, so a persistent fault does not spin. */
  private backOff(id: string, error: unknown): void {
    const failures = (this.failures.get(id)?.count ?? 0) + 1;
    const delayMs = Math.min(RETRY_MS_MAX, RETRY_MS_MIN * 2 ** Math.min(failures - 1, 10));
    this.failures.set(id, { count: failures, untilMs: performance.now() + delayMs });
    this.log.error({ err: error, vserverId: id, failures, retryInMs: delayMs }, "vserver task failed");
    setTimeout(() => this.reconcile(), delayMs).unref();
  }

  /** The desired generation of a vserver on this node, or undefined if it should not run here. */
  private wanted(id: string): { spec: VserverRecord; generation: number } | undefined {
    const snapshot = this.view?.current;
    if (snapshot === undefined || this.options.lease() === undefined) return undefined;
    const spec = snapshot.vservers.get(id)?.record;
    const placement = snapshot.placements.get(id)?.record;
    if (spec === undefined || placement === undefined || placement.node !== this.options.nodeId)
      return undefined;
    if (this.fencedAt.get(id) === placement.generation) return undefined;
    return { spec, generation: placement.generation };
  }

  /** The next task for one vserver, if any. */
  private step(id: string): Promise<void> | undefined {
    const want = this.wanted(id);
    const have = this.served.get(id);
    if (have !== undefined) {
      const same =
        want !== undefined &&
        want.generation === have.generation &&
        sameSpec(want.spec, have.spec) &&
        !have.fenced;
      if (!same) return this.stop(id, have);
      const migration = this.view?.current.migrations.get(id)?.record;
      if (
        migration !== undefined &&
        migration.state === "requested" &&
        migration.from === this.options.nodeId &&
        !this.migrationsSeen.has(migration.requestId) &&
        have.runtime !== undefined
      ) {
        this.migrationsSeen.add(migration.requestId);
        return this.moveOut(id, have, migration.requestId, migration.to, migration.force);
      }
      return undefined;
    }
    if (want === undefined) return undefined;
    const failed = this.failures.get(id);
    if (failed !== undefined && performance.now() < failed.untilMs) return undefined;
    return this.start(id, want.spec, want.generation);
  }

  private stillWanted(id: string, generation: number): boolean {
    return !this.closed && this.wanted(id)?.generation === generation;
  }

  private async start(id: string, spec: VserverRecord, generation: number): Promise<void> {
    const served: Served = {
      spec,
      generation,
      runtime: undefined,
      devices: [],
      fenced: false,
      holder: undefined,
    };
    this.served.set(id, served);
    try {
      await this.bringUp(id, served);
    } catch (error) {
      this.served.delete(id);
      await served.runtime?.abort();
      await this.releaseVips(served);
      await Promise.allSettled(served.devices.map((d) => d.close()));
      await this.letGo(id, served);
      throw error;
    }
  }

  private async bringUp(id: string, served: Served): Promise<void> {
    const { spec, generation } = served;
    const log = this.log.child({ vserverId: id, generation });
    const { store, nodeId } = this.options;
    log.info("starting vserver");
    const startedAt = performance.now();
    const holdingLease = this.options.lease();
    if (holdingLease === undefined) return;
    served.holder = await takeHolder({
      store,
      nodeId,
      vserverId: id,
      generation,
      leaseId: holdingLease.id,
      waitMs: this.options.handoverWaitMs ?? HANDOVER_WAIT_MS_DEFAULT,
      log,
      nextChange: (ms) => this.nextChange(ms),
      stillWanted: () => this.stillWanted(id, generation),
    });
    if (served.holder === undefined) return;
    // Where a start's time goes (holder, volume takeover, file system check, runtime), for its log line.
    const phases = {
      holderMs: Math.round(performance.now() - startedAt),
      volumesMs: 0,
      checkMs: 0,
      runtimeMs: 0,
    };
    let phaseAt = performance.now();
    const phaseEnd = (): number => {
      const now = performance.now();
      const ms = Math.round(now - phaseAt);
      phaseAt = now;
      return ms;
    };
    const ownerEpochs: Record<string, number> = {};
    for (const volumeId of spec.volumes) {
      if (!this.stillWanted(id, generation)) return;
      const lease = this.options.lease();
      const { device, epoch } = await RemoteBlockDevice.takeOver({
        store,
        servers: this.options.servers,
        volumeId,
        filerId: nodeId,
        ...(lease === undefined ? {} : { lease }),
        stallMaxMs: this.options.stallMaxMs ?? STALL_MAX_MS_DEFAULT,
        logger: log,
        onFenced: (error) => this.onFenced(id, served, error),
      });
      ownerEpochs[volumeId] = epoch;
      served.devices.push(device);
    }
    phases.volumesMs = phaseEnd();
    const device = served.devices[0];
    assert(
      device !== undefined && served.devices.length === spec.volumes.length,
      "a vserver has its volumes",
    );
    for (const [i, volumeId] of spec.volumes.entries())
      await this.ensureFileSystem(volumeId, served.devices[i]!, log);
    // The first volume is the export "/", each further one "/VOLUME-ID"; handle volume ids count from 1.
    const more = served.devices
      .slice(1)
      .map((d, i) => ({ name: spec.volumes[i + 1]!, volumeId: i + 2, device: d }));
    const exports = spec.exports.map((text) => parseExportRule(text));
    phases.checkMs = phaseEnd();
    await this.options.vips?.hold(id, spec.vips);
    const staged = this.takeStaged(id, generation);
    let attempts = 0;
    try {
      while (served.runtime === undefined) {
        if (!this.stillWanted(id, generation) || served.fenced) return;
        served.runtime = await this.startRuntime(
          served,
          device,
          more,
          exports,
          log,
          staged?.state,
          attempts++,
        );
      }
    } finally {
      if (served.runtime === undefined) staged?.state.dispose();
    }
    const runtime = served.runtime;
    phases.runtimeMs = phaseEnd();
    if (served.fenced) return;
    void this.options.vips?.serving(id, spec.vips);
    const stats = runtime.stateStats();
    const record: RunningRecord = {
      nodeId,
      generation,
      endpoints: runtime.endpoints.map((e) => ({ ...e })),
      ownerEpochs,
      sinceMs: Date.now(),
      statePages: stats.pages,
      stateLiveBytes: stats.liveBytes,
      liveFrom: staged?.from ?? null,
    };
    const lease = this.options.lease();
    if (lease !== undefined) {
      await store
        .put(clusterKeys.running(id), encodeRecord(runningRecordSchema, record), { lease: lease.id })
        .catch((error: unknown) => log.warn({ err: error }, "could not publish the running record"));
    }
    log.info(
      {
        ms: Math.round(performance.now() - startedAt),
        urls: runtime.endpoints.map((e) => e.url),
        handoverFrom: served.holder.from ?? null,
        handoverWaitMs: served.holder.waitedMs,
        forced: served.holder.forced,
        liveFrom: staged?.from ?? null,
        statePages: stats.pages,
        ...phases,
      },
      "vserver started",
    );
    this.failures.delete(id);
  }

  /** One attempt to start serving; undefined when a VIP is still held elsewhere (try again). */
  private async startRuntime(
    served: Served,
    device: RemoteBlockDevice,
    more: { name: string; volumeId: number; device: RemoteBlockDevice }[],
    exports: ReturnType<typeof parseExportRule>[],
    log: Logger,
    state: ServiceState | undefined,
    attempts: number,
  ): Promise<VserverRuntime | undefined> {
    const { spec } = served;
    try {
      return await VserverRuntime.start({
        vserverId: spec.handleId,
        volumeId: 1,
        handleKey: new Uint8Array(Buffer.from(spec.handleKey, "base64")),
        device,
        more,
        format: false,
        vips: spec.vips,
        nfsPort: spec.nfsPort,
        mountPort: spec.mountPort,
        exports,
        logger: log,
        pages: this.pages,
        ...(this.options.nfsMetrics === undefined
          ? {}
          : { metrics: this.options.nfsMetrics(spec.vserverId) }),
        ...(state === undefined ? {} : { state }),
        ...(this.options.cacheBytes === undefined ? {} : { cacheBytes: this.options.cacheBytes }),
      });
    } catch (error) {
      // A VIP still held by a previous owner that has not yet stopped (it will, once it sees it
      // has lost its lease): wait for it, as a real VIP waits for the old holder's ARP to age out.
      if (!isAddressInUse(error)) throw error;
      if (attempts % 20 === 0) log.warn({ err: error, attempts }, "a VIP is still held elsewhere; retrying");
      await new Promise((resolve) => setTimeout(resolve, this.options.bindRetryMs ?? BIND_RETRY_MS_DEFAULT));
      return undefined;
    }
  }

  /** The service-state memory of each vserver running here, for the health record and status. */
  serviceState(): { vserverId: string; pages: number; liveBytes: number }[] {
    const usage: { vserverId: string; pages: number; liveBytes: number }[] = [];
    for (const [vserverId, served] of this.served) {
      if (served.runtime === undefined) continue;
      const stats = served.runtime.stateStats();
      usage.push({ vserverId, pages: stats.pages, liveBytes: stats.liveBytes });
    }
    return usage;
  }

  /** Bytes through each VIP served here since its vserver started here (for port balancing). */
  vipBytes(): Map<string, number> {
    const bytes = new Map<string, number>();
    for (const served of this.served.values())
      for (const [vip, count] of served.runtime?.vipBytes() ?? []) bytes.set(vip, count);
    return bytes;
  }

  /** The cluster as this agent last saw it (undefined before its view's first snapshot). */
  get cluster(): ClusterSnapshot | undefined {
    return this.view?.current;
  }

  /** Where this node takes live moves (host:port), or "" when it takes none. */
  get moveAddress(): string {
    return this.moveListener?.address ?? "";
  }

  /** The receiving side's check of an offer: alive, not closing, room for the pages and a slot. */
  private checkOffer(offer: MoveOffer): string | undefined {
    if (this.closed || this.options.lease() === undefined)
      return `node ${this.options.nodeId} is not serving`;
    const need = offer.pages + headroomPages(offer.pages);
    if (this.pages.pagesFree < need)
      return `node ${this.options.nodeId} has ${this.pages.pagesFree} free service-state pages, needs ${need}`;
    const slots = this.options.vserversMax ?? Number.POSITIVE_INFINITY;
    if (this.served.size >= slots) return `node ${this.options.nodeId} already runs its ${slots} vservers`;
    if (this.served.has(offer.vserverId)) return `vserver ${offer.vserverId} already runs here`;
    return undefined;
  }

  /** Builds the moved state from its pages (re-based and checked) and keeps it for the start. */
  private stage(offer: MoveOffer, manifest: MoveManifest, images: ReadonlyMap<number, Uint8Array>): void {
    if (manifest.tag !== offer.tag)
      throw new Error(`the manifest's tag ${manifest.tag} is not the offer's ${offer.tag}`);
    const state = ServiceState.restore(this.pages, manifest, images);
    this.dropStaged(offer.vserverId);
    const timer = setTimeout(() => {
      if (this.dropStaged(offer.vserverId))
        this.log.warn(
          { vserverId: offer.vserverId },
          "moved-in state dropped: the vserver did not start here in time",
        );
    }, STAGED_TTL_MS);
    timer.unref();
    this.staged.set(offer.vserverId, {
      generation: offer.generation,
      moveId: offer.moveId,
      from: offer.from,
      state,
      timer,
    });
    this.log.info(
      { vserverId: offer.vserverId, from: offer.from, pages: manifest.pages.length },
      "moved-in state staged",
    );
  }

  private takeStaged(id: string, generation: number): Staged | undefined {
    const staged = this.staged.get(id);
    if (staged === undefined) return undefined;
    this.staged.delete(id);
    clearTimeout(staged.timer);
    // A move that failed after the final copy leaves its state here; a later start of the same
    // generation (a fallback stop and start) must not take it: only the cutover's placement names it.
    const placement = this.view?.current.placements.get(id)?.record;
    if (staged.generation === generation && placement?.liveMove === staged.moveId) return staged;
    this.log.info(
      { vserverId: id, generation, moveId: staged.moveId },
      "moved-in state dropped: this start is not that live move's cutover",
    );
    staged.state.dispose();
    return undefined;
  }

  private dropStaged(id: string): boolean {
    const staged = this.staged.get(id);
    if (staged === undefined) return false;
    this.staged.delete(id);
    clearTimeout(staged.timer);
    staged.state.dispose();
    return true;
  }

  /** Carries out a live move of a vserver served here (see live-move.ts); records how it went. */
  private async moveOut(
    id: string,
    served: Served,
    requestId: string,
    to: string,
    force: boolean,
  ): Promise<void> {
    const { store, nodeId } = this.options;
    const log = this.log.child({ vserverId: id, liveMoveTo: to, requestId });
    const report = (patch: Parameters<typeof updateMigration>[3]): Promise<void> =>
      updateMigration(store, id, requestId, patch).catch((error: unknown) =>
        log.warn({ err: error }, "could not record the live move's progress"),
      );
    const runtime = served.runtime;
    const secret = this.options.move?.secret;
    let sender: MoveSender | undefined;
    let rounds = 0;
    let suspendedAt: number | undefined;
    let cutOver = false;
    // Which step failed is what an operator needs first (a socket error alone does not say).
    let step = "checking the move";
    try {
      if (runtime === undefined || secret === undefined)
        throw new Error(`node ${nodeId} cannot send live moves`);
      const snapshot = this.view?.current;
      if (snapshot === undefined) throw new Error("no view of the cluster yet");
      checkLiveMove(snapshot, id, to, force);
      const placement = snapshot.placements.get(id);
      if (placement === undefined || placement.record.generation !== served.generation)
        throw new Error("the vserver's placement changed; not moved");
      const target = snapshot.nodes.get(to);
      if (target === undefined) throw new Error(`node ${to} is gone`);
      const stats = runtime.stateStats();
      log.info({ pages: stats.pages, liveBytes: stats.liveBytes }, "live move: offering the state");
      step = `connecting to node ${to}`;
      sender = await MoveSender.open(target.moveAddress, secret);
      step = `offering the state to node ${to}`;
      const refusal = await sender.offer({
        vserverId: id,
        tag: runtime.state.arena.tag,
        generation: placement.record.generation + 1,
        moveId: requestId,
        from: nodeId,
        pages: stats.pages,
        liveBytes: stats.liveBytes,
      });
      if (refusal !== undefined) throw new Error(`node ${to} refused: ${refusal}`);
      await report({ state: "copying" });
      step = `pre-copying to node ${to}`;
      const pre = await precopy(runtime.state, sender, log, this.options.move?.precopyBytesPerSec ?? 0);
      rounds = pre.rounds;
      await this.publishConnections(id);
      suspendedAt = performance.now();
      await runtime.suspend(SUSPEND_DRAIN_MS);
      try {
        step = `final copy to node ${to}`;
        await finalCopy(runtime.state, sender, pre.pending);
        step = "cutting over";
        const placed = await placeVserver(store, id, to, placement, requestId);
        if (placed === undefined) throw new Error("the vserver's placement changed during the move");
        cutOver = true;
      } catch (error) {
        runtime.resume();
        throw error;
      }
      // From here the target owns the vserver: hand off and let go, as a planned move does.
      step = "releasing the vserver here after the cutover";
      await runtime.handOff();
      await this.releaseVips(served);
      const closed = await Promise.allSettled(served.devices.map((d) => d.close()));
      this.served.delete(id);
      // The holder key goes first: the next owner waits for it; the running record is for status.
      const [released] = await Promise.all([
        this.letGo(id, served),
        this.withdrawRunning(id, served.generation),
      ]);
      const suspendedMs = Math.round(performance.now() - suspendedAt);
      log.info(
        {
          rounds,
          pagesSent: sender.pagesSent,
          bytesSent: sender.bytesSent,
          suspendedMs,
          clean: released && closed.every((c) => c.status === "fulfilled"),
        },
        "live move: handed over",
      );
      await report({
        state: "done",
        rounds,
        pagesSent: sender.pagesSent,
        bytesSent: sender.bytesSent,
        suspendedMs,
      });
      this.event({
        kind: "live-move",
        cause: "moved",
        subject: id,
        reason: `moved live from ${nodeId} to ${to}: ${sender.pagesSent} pages (${Math.round(sender.bytesSent / 1024)} KiB) in ${rounds} pre-copy rounds, suspended ${suspendedMs} ms`,
        details: { from: nodeId, to, requestId, suspendedMs },
      });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      const reason = `${step}: ${message}`;
      if (cutOver) {
        // The target owns it now; what failed was the local clean-up (the holder key goes with the lease).
        log.error({ err: error }, "live move: clean-up after the cutover failed");
        this.served.delete(id);
        await report({ state: "done", reason, rounds });
        return;
      }
      sender?.abort();
      log.warn({ reason }, "live move failed; the vserver goes on serving here");
      this.event({
        kind: "live-move",
        cause: "rolled-back",
        subject: id,
        reason: `live move to ${to} rolled back, still serving on ${nodeId}: ${reason}`,
        details: { from: nodeId, to, requestId },
      });
      await report({
        state: "failed",
        reason,
        rounds,
        pagesSent: sender?.pagesSent ?? 0,
        bytesSent: sender?.bytesSent ?? 0,
        suspendedMs: suspendedAt === undefined ? 0 : Math.round(performance.now() - suspendedAt),
      });
    } finally {
      sender?.close();
    }
  }

  /** A file system is made once per volume, and recorded before anyone can write to it. */
  private async ensureFileSystem(volumeId: string, device: RemoteBlockDevice, log: Logger): Promise<void> {
    const key = clusterKeys.filesystem(volumeId);
    if ((await this.options.store.get(key)) !== undefined) return;
    await mkfs(device);
    await this.options.store.put(
      key,
      encodeRecord(filesystemRecordSchema, { madeAtMs: Date.now(), madeBy: this.options.nodeId }),
    );
    log.info({ volumeId }, "made a file system on a new volume");
  }

  /** An event this node decided or saw happen to it (see event-log.ts). */
  private event(input: Omit<EventInput, "atMs" | "by">): void {
    recordEvents(this.options.store, [{ ...input, atMs: Date.now(), by: this.options.nodeId }], this.log);
  }

  private onFenced(id: string, served: Served, error: BlockDeviceError): void {
    if (served.fenced) return;
    served.fenced = true;
    this.fencedAt.set(id, served.generation);
    this.log.error({ vserverId: id, err: error }, "fenced by a newer owner: stopping this vserver at once");
    this.event({
      kind: "fence",
      cause: "fenced",
      subject: id,
      reason: `node ${this.options.nodeId} was refused by a storage server (a newer owner took the volume): it stopped serving at once`,
      details: { generation: served.generation, error: error.message },
    });
    void served.runtime?.abort();
    this.reconcile();
  }

  private async stop(id: string, served: Served): Promise<void> {
    const log = this.log.child({ vserverId: id, generation: served.generation });
    log.info({ fenced: served.fenced }, "stopping vserver");
    const startedAt = performance.now();
    let clean = false;
    await this.publishConnections(id);
    try {
      const storageCut = this.options.vips?.storageCut() ?? false;
      if (served.fenced || this.options.lease() === undefined || storageCut) {
        // Not ours to write any more, or nowhere to write it: drop everything unflushed. What a
        // client was told is stable (FILE_SYNC, COMMIT, a namespace change) is on the storage
        // servers already; an UNSTABLE write not yet committed is sent again by its client when it
        // sees the next owner's write verifier.
        if (storageCut) log.warn("this node cannot reach every storage server: stopping without flushing");
        await served.runtime?.abort();
        await Promise.allSettled(served.devices.map((d) => d.abandon()));
      } else {
        // Listeners closed, calls in flight finished, committed, unmounted: then the devices flushed.
        // Clients that cannot reach this node cannot close their connections either: waiting for
        // them only delays the next owner.
        const reachable = this.options.vips?.reachable(served.spec.vips) ?? true;
        await served.runtime?.stop(reachable ? undefined : UNREACHABLE_CLOSE_MS);
        const closed = await Promise.allSettled(served.devices.map((d) => d.close()));
        clean = closed.every((c) => c.status === "fulfilled");
      }
    } finally {
      this.served.delete(id);
      // Off the ports before the holder key goes, so the next owner's announcement is the last.
      await this.releaseVips(served);
      // The holder key goes first: the next owner waits for it; the running record is for status.
      const [released] = await Promise.all([
        this.letGo(id, served),
        this.withdrawRunning(id, served.generation),
      ]);
      if (clean && released)
        log.info(
          { ms: Math.round(performance.now() - startedAt) },
          "handed over: calls finished, committed, unmounted, released",
        );
    }
    log.info("vserver stopped");
  }

  /**
   * The vserver's connections as they are now, for the next holder to tickle; bounded in time, so a
   * slow store delays a stop by at most PUBLISH_AT_STOP_MS (the periodic record stands then).
   */
  private async publishConnections(id: string): Promise<void> {
    const vips = this.options.vips;
    // A deleted vserver's record went with it: its VIPs have no next holder to tickle.
    if (vips === undefined || this.view?.current.vservers.has(id) !== true) return;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, PUBLISH_AT_STOP_MS);
    });
    await Promise.race([
      vips
        .publishConnectionsOf(id)
        .catch((error: unknown) =>
          this.log.warn({ err: error, vserverId: id }, "could not publish the connections at stop"),
        ),
      late,
    ]).finally(() => clearTimeout(timer));
  }

  private async releaseVips(served: Served): Promise<void> {
    await this.options.vips
      ?.release(served.spec.vips)
      .catch((error: unknown) =>
        this.log.error({ err: error, vips: served.spec.vips }, "could not release VIPs"),
      );
  }

  /** Deletes this node's holder key, if it still is this node's: the next owner may start. */
  private async letGo(id: string, served: Served): Promise<boolean> {
    const claim = served.holder;
    if (claim === undefined) return false;
    served.holder = undefined;
    try {
      return await releaseHolder(this.options.store, claim);
    } catch (error) {
      // The key stays until the lease goes: the next owner waits for that, or for its bounded wait.
      this.log.warn({ err: error, vserverId: id }, "could not release the holder key");
      return false;
    }
  }

  private async withdrawRunning(id: string, generation: number): Promise<void> {
    const key = clusterKeys.running(id);
    const running = this.view?.current.running.get(id);
    if (running === undefined || running.nodeId !== this.options.nodeId || running.generation !== generation)
      return;
    const kv = await this.options.store.get(key).catch(() => undefined);
    if (kv === undefined) return;
    // The next owner may have written its own record by now (the holder key went first): keep it.
    let stored: RunningRecord;
    try {
      stored = decodeRecord(runningRecordSchema, key, kv.value);
    } catch {
      return;
    }
    if (stored.nodeId !== this.options.nodeId || stored.generation !== generation) return;
    await this.options.store
      .txn([{ key, target: "mod", equals: kv.modRevision }], [{ op: "delete", key }])
      .catch((error: unknown) => this.log.warn({ err: error }, "could not withdraw a running record"));
  }

  /** The lease is gone: stop serving everything at once, flushing nothing. */
  async suspend(): Promise<void> {
    const all = [...this.served.values()];
    await Promise.allSettled(all.map((s) => s.runtime?.abort()));
    this.reconcile();
  }

  /** A crash: every listener cut, nothing flushed or released, nothing followed any more. */
  async kill(): Promise<void> {
    this.closed = true;
    const all = [...this.served.values()];
    await Promise.allSettled(all.map((s) => s.runtime?.abort()));
    await Promise.allSettled(all.flatMap((s) => s.devices.map((d) => d.abandon())));
    await this.moveListener?.close();
    for (const id of [...this.staged.keys()]) this.dropStaged(id);
    await this.view?.close();
  }

  /** Stops every vserver cleanly (committed and unmounted) and stops following. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.tasks.values()]);
    await Promise.allSettled([...this.served.entries()].map(([id, served]) => this.stop(id, served)));
    await this.moveListener?.close();
    for (const id of [...this.staged.keys()]) this.dropStaged(id);
    await this.view?.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

function sameSpec(a: VserverRecord, b: VserverRecord): boolean {
  return (
    a.handleKey === b.handleKey &&
    a.nfsPort === b.nfsPort &&
    a.mountPort === b.mountPort &&
    a.vips.join() === b.vips.join() &&
    a.volumes.join() === b.volumes.join() &&
    a.exports.join("\n") === b.exports.join("\n")
  );
}

function isAddressInUse(error: unknown): boolean {
  return error instanceof Error && "code" in error && error.code === "EADDRINUSE";
}
