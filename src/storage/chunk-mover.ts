/**
 * Moves one chunk from server A to server B while its volume is in use:
 *
 *   1. record an intent (resumable), make the chunk on B and begin filling it, add B to the chunk's
 *      route as "filling", and wait until every filer has acknowledged that routing: from then on
 *      every client write also goes to B;
 *   2. B copies the chunk from A range by range; B skips blocks a client write touched since the
 *      copy began, so a copier's old read can never land over a newer write (the copy/mirror race);
 *   3. compare checksums of A and B until each block has been seen equal once, recopying blocks
 *      never seen equal; end filling (B syncs the chunk) and compare again;
 *   4. switch (B active, A dropped from the route) atomically with "no mirrored write to B failed"
 *      and wait for every filer's acknowledgement; only then delete A's copy.
 *
 * A mirrored write that fails on B restarts the copy (the filer records a mirror fault; the switch
 * refuses to happen while one is recorded), and so does a server of the copy that cannot be reached,
 * for as long as a restarting server takes to come back (copy-restarts.ts). A crash of the mover
 * leaves the intent and its checkpoint; `resumeAll` continues from the checkpoint, and the
 * verification step catches anything lost.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { type Logger, pino } from "pino";
import { BLOCK_BYTES } from "../block/types.ts";
import type { Compare, CoordinationStore } from "../store/index.ts";
import {
  type ChunkRoute,
  chunkIndexOfKey,
  chunkRouteSchema,
  decodeRecord,
  encodeRecord,
  filerAckSchema,
  keys,
  MOVES_PREFIX,
  type MoveIntent,
  mirrorFaultSchema,
  moveIntentSchema,
  type VolumeRecord,
} from "./catalog.ts";
import { CopyRestarts, type RestartKind } from "./copy-restarts.ts";
import { allBlocks, blockRuns, stillUnverified } from "./copy-verification.ts";
import { readRoute, type StoredRoute, updateRoute } from "./routing.ts";
import type { StorageClientSource } from "./server-registry.ts";
import { KeyedSemaphore, Throttle } from "./throttle.ts";
import { type ChunkRef, REQUEST_BLOCKS_MAX, type StorageClient, StorageError } from "./types.ts";
import { getVolume } from "./volumes.ts";

export interface MovePlan {
  readonly volumeId: string;
  readonly chunkIndex: number;
  /** The replica copied from. */
  readonly from: string;
  readonly to: string;
  readonly reason: MoveIntent["reason"];
  /** Keep `from` in the route after the move (re-replication: the copy is added, not moved). */
  readonly keepSource: boolean;
  /** A replica to take out of the route when B is added (a dead server being replaced). */
  readonly drop?: string;
}

export interface MoveProgress {
  readonly volumeId: string;
  readonly chunkIndex: number;
  /** Bytes moved since the last report. */
  readonly bytes: number;
}

export interface MoveRestart {
  readonly plan: MovePlan;
  readonly kind: RestartKind;
  readonly reason: string;
  /** Restarts of this move so far, this one included. */
  readonly restarts: number;
}

export interface ChunkMoverOptions {
  readonly store: CoordinationStore;
  readonly servers: StorageClientSource;
  readonly logger?: Logger;
  /** Bytes per second over all moves of this mover; 0 = unlimited. */
  readonly bandwidthBytesPerSecond?: number;
  /** Moves one storage server takes part in at once (as source or target). */
  readonly movesPerServerMax?: number;
  /** How long to wait for every filer to acknowledge a routing change. */
  readonly ackTimeoutMs?: number;
  /** Blocks copied between two checkpoints in the store. */
  readonly checkpointBlocks?: number;
  /** Blocks one copy request moves (at most REQUEST_BLOCKS_MAX). */
  readonly copyStepBlocks?: number;
  /** Copy requests of one move in flight at once. */
  readonly copyInFlight?: number;
  /** Copy restarts of one chunk for what its copy found (not an unreachable server) before giving up. */
  readonly restartsMax?: number;
  /**
   * How long one run of restarts because a server of the copy cannot be reached may last before the
   * move is given up: longer than a storage server takes to restart and register again.
   */
  readonly unreachableBudgetMs?: number;
  readonly onProgress?: (progress: MoveProgress) => void;
  /** Called each time a chunk's copy starts over (for status and tests). */
  readonly onRestart?: (restart: MoveRestart) => void;
  /** Test hook: runs after each copied range. */
  readonly afterCopyStep?: (plan: MovePlan, blockOffset: number) => Promise<void>;
}

export class MoveError extends Error {
  override name = "MoveError";
  readonly code: "BUSY" | "SUPERSEDED" | "FAILED" | "UNAVAILABLE";
  constructor(code: MoveError["code"], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** Thrown inside a move to start the chunk's copy over with a new generation. */
class RestartCopy extends Error {
  readonly kind: RestartKind;
  constructor(kind: RestartKind, message: string) {
    super(message);
    this.kind = kind;
  }
}

/**
 * Rounds of one verification, with pauses growing from VERIFY_PAUSE_MS_MIN: blocks a steady writer
 * keeps in flight get several chances, over about a second, to be seen equal.
 */
const VERIFY_ROUNDS_MAX = 8;
const VERIFY_PAUSE_MS_MIN = 10;
const VERIFY_PAUSE_MS_MAX = 320;
/** A restarting storage server takes a second or two to be back under its new address. */
const UNREACHABLE_BUDGET_MS_DEFAULT = 10_000;
/** Acknowledgements usually take one store round trip: look often, it is a cheap read. */
const ACK_POLL_MS_MAX = 10;

export class ChunkMover {
  private readonly store: CoordinationStore;
  private readonly log: Logger;
  private readonly throttle: Throttle;
  private readonly slots: KeyedSemaphore;
  private readonly ackTimeoutMs: number;
  private readonly checkpointBlocks: number;
  private readonly restartsMax: number;
  private readonly unreachableBudgetMs: number;
  private readonly copyStepBlocks: number;
  private readonly copyInFlight: number;

  private readonly options: ChunkMoverOptions;

  constructor(options: ChunkMoverOptions) {
    this.options = options;
    this.store = options.store;
    this.log = (options.logger ?? pino({ level: "silent" })).child({ component: "chunk-mover" });
    this.throttle = new Throttle(options.bandwidthBytesPerSecond ?? 0);
    this.slots = new KeyedSemaphore(options.movesPerServerMax ?? 4);
    this.ackTimeoutMs = options.ackTimeoutMs ?? 30_000;
    this.checkpointBlocks = options.checkpointBlocks ?? 4 * REQUEST_BLOCKS_MAX;
    this.restartsMax = options.restartsMax ?? 5;
    this.unreachableBudgetMs = options.unreachableBudgetMs ?? UNREACHABLE_BUDGET_MS_DEFAULT;
    this.copyInFlight = Math.max(1, options.copyInFlight ?? 4);
    this.copyStepBlocks = Math.min(options.copyStepBlocks ?? REQUEST_BLOCKS_MAX, REQUEST_BLOCKS_MAX);
  }

  /** Every move recorded in the store and not finished (a mover crashed, or is running elsewhere). */
  async pendingMoves(): Promise<MovePlan[]> {
    const { kvs } = await this.store.range(MOVES_PREFIX);
    return kvs.map((kv) => {
      const intent = decodeRecord(moveIntentSchema, kv.key, kv.value);
      const volumeId = kv.key.slice(MOVES_PREFIX.length, kv.key.lastIndexOf("/"));
      return {
        volumeId,
        chunkIndex: chunkIndexOfKey(kv.key),
        from: intent.from,
        to: intent.to,
        reason: intent.reason,
        keepSource: intent.keepSource,
      };
    });
  }

  /** Moves one chunk. Resolves once the switch is acknowledged and the source copy is dropped. */
  async move(plan: MovePlan): Promise<void> {
    using _slots = await this.slots.acquire([plan.from, plan.to]);
    const log = this.log.child({
      volumeId: plan.volumeId,
      chunkIndex: plan.chunkIndex,
      from: plan.from,
      to: plan.to,
    });
    const volume = await getVolume(this.store, plan.volumeId);
    const chunk: ChunkRef = { volumeId: plan.volumeId, chunkIndex: plan.chunkIndex };
    const chunkBlockCount = Math.min(
      volume.chunkBlocks,
      volume.blockCount - plan.chunkIndex * volume.chunkBlocks,
    );
    let intent = await this.claim(plan);
    log.info({ generation: intent.value.generation, resumeAt: intent.value.copiedBlocks }, "moving chunk");
    try {
      // B holds the chunk, filling, before any filer sends it a write: a mirrored write that found
      // no chunk there would record a mirror fault and restart the copy for nothing.
      const generation = intent.value.generation;
      await this.call(() => this.client(plan.to).beginFill(chunk, generation));
      let fill = await this.updateRoute(volume, plan.chunkIndex, (route) => withFilling(route, plan));
      await this.waitForAcks(volume, fill.modRevision);
      let switchRevision = 0;
      const restarts = new CopyRestarts(this.restartsMax, this.unreachableBudgetMs);
      for (;;) {
        const attempt = { reachedTarget: false };
        try {
          await this.copyAndVerify(
            attempt,
            plan,
            chunk,
            chunkBlockCount,
            intent.value.generation,
            intent.value.copiedBlocks,
            (copied) =>
              this.checkpoint(plan, intent, copied).then((next) => {
                intent = next;
              }),
          );
          const switched = await this.trySwitch(volume, plan, fill.modRevision, intent.modRevision);
          if (typeof switched === "number") {
            switchRevision = switched;
            break;
          }
          if (switched === "route-changed") {
            fill = await this.currentRoute(volume, plan.chunkIndex);
            if (
              !isFilling(fill.route, plan.to) ||
              !fill.route.replicas.some((r) => r.serverId === plan.from)
            ) {
              throw new MoveError("FAILED", "the chunk's route changed under the move (a replica left)");
            }
          }
          throw new RestartCopy("content", "a mirrored write to the target failed, or the route changed");
        } catch (error) {
          if (!(error instanceof RestartCopy)) throw error;
          const decision = restarts.next(error.kind, attempt.reachedTarget, performance.now());
          if (!decision.restart) {
            throw new MoveError(
              error.kind === "unreachable" ? "UNAVAILABLE" : "FAILED",
              `${decision.why}: ${error.message}`,
            );
          }
          log.warn(
            { reason: error.message, kind: error.kind, restarts: restarts.count },
            "restarting the chunk's copy",
          );
          this.options.onRestart?.({
            plan,
            kind: error.kind,
            reason: error.message,
            restarts: restarts.count,
          });
          intent = await this.restartIntent(plan, intent);
          await sleep(decision.pauseMs);
        }
      }
      await this.waitForAcks(volume, switchRevision);
      // Every filer now sends to the new replica set only: the source copy can go. The move is done
      // whatever happens to it: a source not registered now (restarting) keeps a copy no route
      // names, garbage, as when its drop fails.
      const source = plan.keepSource ? undefined : this.options.servers.clientFor(plan.from);
      if (!plan.keepSource && source === undefined)
        log.warn("the source is not registered; its copy is garbage now");
      await Promise.all([
        source
          ?.dropChunk(chunk)
          .catch((error: unknown) =>
            log.warn({ err: error }, "could not drop the source copy; it is garbage now"),
          ),
        this.store.delete(keys.move(plan.volumeId, plan.chunkIndex)),
      ]);
      log.info("chunk moved");
    } catch (error) {
      if (error instanceof MoveError && error.code === "SUPERSEDED") throw error;
      log.error({ err: error }, "chunk move failed; rolling back");
      await this.rollBack(volume, plan).catch((rollbackError: unknown) =>
        log.error({ err: rollbackError }, "rollback failed; the intent stays for a later resume"),
      );
      throw error instanceof MoveError
        ? error
        : new MoveError(
            "FAILED",
            `moving chunk ${plan.chunkIndex} of ${plan.volumeId} failed: ${String(error)}`,
            {
              cause: error,
            },
          );
    }
  }

  /** Records the intent, or takes over an unfinished one of the same move with a new generation. */
  private async claim(plan: MovePlan): Promise<{ value: MoveIntent; modRevision: number }> {
    const key = keys.move(plan.volumeId, plan.chunkIndex);
    for (let attempt = 0; attempt < 10; attempt++) {
      const existing = await this.store.get(key);
      if (existing === undefined) {
        const value: MoveIntent = {
          from: plan.from,
          to: plan.to,
          generation: 1,
          copiedBlocks: 0,
          reason: plan.reason,
          keepSource: plan.keepSource,
        };
        const result = await this.store.txn(
          [{ key, target: "create", equals: 0 }],
          [
            { op: "put", key, value: encodeRecord(moveIntentSchema, value) },
            // A fault recorded by an earlier copy of this chunk says nothing about this one.
            { op: "delete", key: keys.mirrorFault(plan.volumeId, plan.chunkIndex) },
          ],
        );
        if (result.succeeded) return { value, modRevision: result.revision };
        continue;
      }
      const current = decodeRecord(moveIntentSchema, key, existing.value);
      if (current.from !== plan.from || current.to !== plan.to) {
        throw new MoveError(
          "BUSY",
          `chunk ${plan.chunkIndex} of ${plan.volumeId} is already moving ${current.from} → ${current.to}`,
        );
      }
      const value = { ...current, generation: current.generation + 1 };
      const result = await this.store.txn(
        [{ key, target: "mod", equals: existing.modRevision }],
        [
          { op: "put", key, value: encodeRecord(moveIntentSchema, value) },
          // A fault recorded by an earlier copy of this chunk says nothing about this one.
          { op: "delete", key: keys.mirrorFault(plan.volumeId, plan.chunkIndex) },
        ],
      );
      if (result.succeeded) return { value, modRevision: result.revision };
    }
    throw new MoveError(
      "BUSY",
      `chunk ${plan.chunkIndex} of ${plan.volumeId}: its move record keeps changing`,
    );
  }

  private async checkpoint(
    plan: MovePlan,
    intent: { value: MoveIntent; modRevision: number },
    copiedBlocks: number,
    clearFault = false,
  ): Promise<{ value: MoveIntent; modRevision: number }> {
    const key = keys.move(plan.volumeId, plan.chunkIndex);
    const value = { ...intent.value, copiedBlocks };
    const result = await this.store.txn(
      [{ key, target: "mod", equals: intent.modRevision }],
      [
        { op: "put", key, value: encodeRecord(moveIntentSchema, value) },
        ...(clearFault
          ? [{ op: "delete" as const, key: keys.mirrorFault(plan.volumeId, plan.chunkIndex) }]
          : []),
      ],
    );
    if (!result.succeeded) throw new MoveError("SUPERSEDED", "another mover took this chunk's move over");
    return { value, modRevision: result.revision };
  }

  private restartIntent(
    plan: MovePlan,
    intent: { value: MoveIntent; modRevision: number },
  ): Promise<{ value: MoveIntent; modRevision: number }> {
    const next = {
      value: { ...intent.value, generation: intent.value.generation + 1 },
      modRevision: intent.modRevision,
    };
    return this.checkpoint(plan, next, 0, true);
  }

  private async copyAndVerify(
    attempt: { reachedTarget: boolean },
    plan: MovePlan,
    chunk: ChunkRef,
    blockCount: number,
    generation: number,
    resumeAt: number,
    checkpoint: (copiedBlocks: number) => Promise<void>,
  ): Promise<void> {
    const target = this.client(plan.to);
    await this.call(() => target.beginFill(chunk, generation));
    attempt.reachedTarget = true;
    let sinceCheckpoint = 0;
    // Copy requests go out `copyInFlight` at a time; a checkpoint only ever names a frontier below
    // which every range has been copied.
    for (let offset = resumeAt; offset < blockCount; ) {
      await this.checkFault(plan);
      const batch: [number, number][] = [];
      for (let at = offset; at < blockCount && batch.length < this.copyInFlight; ) {
        const count = Math.min(this.copyStepBlocks, blockCount - at);
        batch.push([at, count]);
        at += count;
      }
      await Promise.all(
        batch.map(async ([at, count]) => {
          await this.throttle.take(count * BLOCK_BYTES);
          await this.call(() => target.copyFrom(chunk, generation, plan.from, at, count));
          this.options.onProgress?.({
            volumeId: plan.volumeId,
            chunkIndex: plan.chunkIndex,
            bytes: count * BLOCK_BYTES,
          });
        }),
      );
      const copied = batch.reduce((sum, [, count]) => sum + count, 0);
      offset += copied;
      sinceCheckpoint += copied;
      if (sinceCheckpoint >= this.checkpointBlocks && offset < blockCount) {
        await checkpoint(offset);
        sinceCheckpoint = 0;
      }
      await this.options.afterCopyStep?.(plan, offset);
    }
    await this.verify(plan, chunk, blockCount, generation, true);
    await this.call(() => target.endFill(chunk, generation));
    // After filling ends the target no longer protects fresh blocks: only compare, never copy.
    await this.verify(plan, chunk, blockCount, generation, false);
    await this.checkFault(plan);
  }

  /**
   * Compares A's and B's checksums until every block has been seen equal once (copy-verification.ts
   * says why once is enough), recopying the blocks never yet seen equal while B is filling. A block
   * a client write keeps in flight differs in some snapshots, so the rounds pause longer and longer;
   * only blocks never seen equal in any round restart the copy.
   */
  private async verify(
    plan: MovePlan,
    chunk: ChunkRef,
    blockCount: number,
    generation: number,
    mayCopy: boolean,
  ): Promise<void> {
    const source = this.client(plan.from);
    const target = this.client(plan.to);
    let unverified = allBlocks(blockCount);
    for (let round = 0; round < VERIFY_ROUNDS_MAX; round++) {
      if (round > 0) await sleep(Math.min(VERIFY_PAUSE_MS_MIN * 2 ** (round - 1), VERIFY_PAUSE_MS_MAX));
      const [a, b] = await this.call(() =>
        Promise.all([source.checksums(chunk, blockCount), target.checksums(chunk, blockCount)]),
      );
      unverified = stillUnverified(unverified, a, b);
      if (unverified.length === 0) return;
      const runs = blockRuns(unverified);
      if (this.log.isLevelEnabled("debug"))
        this.log.debug({ chunk, runs, round }, "copy differs from its source");
      if (!mayCopy) continue;
      for (const [start, count] of runs) {
        for (let offset = start; offset < start + count; offset += REQUEST_BLOCKS_MAX) {
          const n = Math.min(REQUEST_BLOCKS_MAX, start + count - offset);
          await this.call(() => target.copyFrom(chunk, generation, plan.from, offset, n));
        }
      }
    }
    throw new RestartCopy(
      "content",
      `${unverified.length} blocks of chunk ${chunk.chunkIndex} never matched their source in ${VERIFY_ROUNDS_MAX} rounds`,
    );
  }

  private async checkFault(plan: MovePlan): Promise<void> {
    const key = keys.mirrorFault(plan.volumeId, plan.chunkIndex);
    const fault = await this.store.get(key);
    if (fault === undefined) return;
    const { message } = decodeRecord(mirrorFaultSchema, key, fault.value);
    throw new RestartCopy("content", `a mirrored write to the target failed: ${message}`);
  }

  /**
   * B becomes active (and A leaves, unless kept) in one transaction that also requires the route to be
   * the one B was filled under and no mirror fault to be recorded: a filer that saw a mirrored write
   * fail records the fault against that same route revision, so one of the two wins. Resolves with
   * the switch's revision when it happened.
   */
  private async trySwitch(
    volume: VolumeRecord,
    plan: MovePlan,
    fillRevision: number,
    intentRevision: number,
  ): Promise<number | "fault" | "route-changed"> {
    const routeKey = keys.route(volume.volumeId, plan.chunkIndex);
    const faultKey = keys.mirrorFault(volume.volumeId, plan.chunkIndex);
    const current = await this.currentRoute(volume, plan.chunkIndex);
    const next: ChunkRoute = {
      replicas: current.route.replicas
        .filter((r) => plan.keepSource || r.serverId !== plan.from)
        .map((r) => (r.serverId === plan.to ? { serverId: r.serverId, state: "active" as const } : r)),
    };
    const compares: Compare[] = [
      { key: routeKey, target: "mod", equals: fillRevision },
      { key: faultKey, target: "create", equals: 0 },
      { key: keys.move(volume.volumeId, plan.chunkIndex), target: "mod", equals: intentRevision },
    ];
    const result = await this.store.txn(
      compares,
      [{ op: "put", key: routeKey, value: encodeRecord(chunkRouteSchema, next) }],
      [
        { op: "get", key: faultKey },
        { op: "get", key: keys.move(volume.volumeId, plan.chunkIndex) },
      ],
    );
    if (result.succeeded) return result.revision;
    const [fault, move] = result.gets;
    if (move === undefined || move.modRevision !== intentRevision) {
      throw new MoveError("SUPERSEDED", "another mover took this chunk's move over");
    }
    return fault !== undefined ? "fault" : "route-changed";
  }

  private async currentRoute(volume: VolumeRecord, chunkIndex: number): Promise<StoredRoute> {
    try {
      return await readRoute(this.store, volume.volumeId, chunkIndex);
    } catch (error) {
      throw new MoveError("FAILED", String(error), { cause: error });
    }
  }

  private updateRoute(
    volume: VolumeRecord,
    chunkIndex: number,
    change: (route: ChunkRoute) => ChunkRoute,
  ): Promise<StoredRoute> {
    return updateRoute(this.store, volume.volumeId, chunkIndex, change);
  }

  /** Waits until every filer using the volume has applied routing at least as new as `revision`. */
  private async waitForAcks(volume: VolumeRecord, revision: number): Promise<void> {
    const deadline = performance.now() + this.ackTimeoutMs;
    for (let delay = 2; ; delay = Math.min(delay * 2, ACK_POLL_MS_MAX)) {
      const { kvs } = await this.store.range(keys.filersOf(volume.volumeId));
      const behind = kvs.filter(
        (kv) => decodeRecord(filerAckSchema, kv.key, kv.value).routingRevision < revision,
      );
      if (behind.length === 0) return;
      if (performance.now() > deadline) {
        throw new MoveError(
          "FAILED",
          `filers ${behind.map((kv) => kv.key.slice(kv.key.lastIndexOf("/") + 1)).join(", ")} did not acknowledge routing ${revision} in ${this.ackTimeoutMs} ms`,
        );
      }
      await sleep(delay);
    }
  }

  private async rollBack(volume: VolumeRecord, plan: MovePlan): Promise<void> {
    const after = await this.updateRoute(volume, plan.chunkIndex, (route) => ({
      replicas: route.replicas.filter((r) => !(r.serverId === plan.to && r.state === "filling")),
    }));
    await this.waitForAcks(volume, after.modRevision).catch(() => undefined);
    if (!after.route.replicas.some((r) => r.serverId === plan.to)) {
      await this.options.servers
        .clientFor(plan.to)
        ?.dropChunk({ volumeId: plan.volumeId, chunkIndex: plan.chunkIndex })
        .catch(() => undefined);
    }
    await this.store.delete(keys.move(plan.volumeId, plan.chunkIndex));
    await this.store.delete(keys.mirrorFault(plan.volumeId, plan.chunkIndex));
  }

  /**
   * A server of the copy. One that is not registered is restarting (its lease ran out before it came
   * back), or gone for good: the copy restarts until the unreachable budget says which.
   */
  private client(serverId: string): StorageClient {
    const client = this.options.servers.clientFor(serverId);
    if (client === undefined)
      throw new RestartCopy("unreachable", `storage server ${serverId} is not registered`);
    return client;
  }

  /** A storage call whose failure (other than a bad request) restarts the copy. */
  private async call<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (!(error instanceof StorageError)) throw error;
      if (error.code === "INVALID" || error.code === "UNAUTHENTICATED") {
        throw new MoveError("FAILED", error.message, { cause: error });
      }
      // STALE_COPY: the target no longer fills this generation, which after a restart on the same
      // address is how a server that lost its in-memory fill state answers.
      const kind = error.code === "UNAVAILABLE" || error.code === "STALE_COPY" ? "unreachable" : "content";
      throw new RestartCopy(kind, `${error.code}: ${error.message}`);
    }
  }
}

function isFilling(route: ChunkRoute, serverId: string): boolean {
  return route.replicas.some((r) => r.serverId === serverId && r.state === "filling");
}

function withFilling(route: ChunkRoute, plan: MovePlan): ChunkRoute {
  const replicas = route.replicas.filter((r) => r.serverId !== plan.drop);
  if (!replicas.some((r) => r.serverId === plan.from && r.state === "active")) {
    throw new MoveError("FAILED", `${plan.from} is not an active replica of chunk ${plan.chunkIndex}`);
  }
  const target = replicas.find((r) => r.serverId === plan.to);
  if (target?.state === "active")
    throw new MoveError("FAILED", `${plan.to} already holds chunk ${plan.chunkIndex}`);
  if (target === undefined) replicas.push({ serverId: plan.to, state: "filling" });
  return { replicas };
}
