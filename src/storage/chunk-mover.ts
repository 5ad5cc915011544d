/**
 * Moves one chunk from server A to server B while its volume is in use:
 *
 *   1. record an intent (resumable), add B to the chunk's route as "filling", and wait until every
 *      filer has acknowledged that routing: from then on every client write also goes to B;
 *   2. B copies the chunk from A range by range; B skips blocks a client write touched since the
 *      copy began, so a copier's old read can never land over a newer write (the copy/mirror race);
 *   3. compare checksums of A and B, recopy what differs; end filling (B syncs the chunk);
 *   4. switch (B active, A dropped from the route) atomically with "no mirrored write to B failed"
 *      and wait for every filer's acknowledgement; only then delete A's copy.
 *
 * A mirrored write that fails on B restarts the copy (the filer records a mirror fault; the switch
 * refuses to happen while one is recorded). A crash of the mover leaves the intent and its checkpoint;
 * `resumeAll` continues from the checkpoint, and the verification step catches anything lost.
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
  moveIntentSchema,
  type VolumeRecord,
} from "./catalog.ts";
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
  /** Copy restarts of one chunk before the move is given up. */
  readonly restartsMax?: number;
  readonly onProgress?: (progress: MoveProgress) => void;
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
class RestartCopy extends Error {}

const VERIFY_ROUNDS = 4;
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
      let fill = await this.updateRoute(volume, plan.chunkIndex, (route) => withFilling(route, plan));
      await this.waitForAcks(volume, fill.modRevision);
      let switchRevision = 0;
      for (let restarts = 0; ; restarts++) {
        try {
          await this.copyAndVerify(
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
          throw new RestartCopy("a mirrored write to the target failed, or the route changed");
        } catch (error) {
          if (!(error instanceof RestartCopy)) throw error;
          if (restarts + 1 >= this.restartsMax) {
            throw new MoveError("FAILED", `copy restarted ${this.restartsMax} times: ${error.message}`);
          }
          log.warn({ reason: error.message, restarts: restarts + 1 }, "restarting the chunk's copy");
          intent = await this.restartIntent(plan, intent);
          await sleep(Math.min(50 * 2 ** restarts, 1000));
        }
      }
      await this.waitForAcks(volume, switchRevision);
      // Every filer now sends to the new replica set only: the source copy can go.
      await Promise.all([
        plan.keepSource
          ? undefined
          : this.client(plan.from)
              .dropChunk(chunk)
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
    plan: MovePlan,
    chunk: ChunkRef,
    blockCount: number,
    generation: number,
    resumeAt: number,
    checkpoint: (copiedBlocks: number) => Promise<void>,
  ): Promise<void> {
    const target = this.client(plan.to);
    await this.call(() => target.beginFill(chunk, generation));
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
   * Compares A's and B's checksums. Differences may be writes still in flight to one of them, so it
   * looks again a few times, recopying differing runs while B is filling; a difference that stays
   * restarts the copy.
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
    for (let round = 0; round < VERIFY_ROUNDS; round++) {
      const [a, b] = await this.call(() =>
        Promise.all([source.checksums(chunk, blockCount), target.checksums(chunk, blockCount)]),
      );
      const runs = differingRuns(a, b);
      if (runs.length === 0) return;
      this.log.debug({ chunk, runs, round }, "copy differs from its source");
      if (mayCopy) {
        for (const [start, count] of runs) {
          for (let offset = start; offset < start + count; offset += REQUEST_BLOCKS_MAX) {
            const n = Math.min(REQUEST_BLOCKS_MAX, start + count - offset);
            await this.call(() => target.copyFrom(chunk, generation, plan.from, offset, n));
          }
        }
      }
      await sleep(10 * (round + 1));
    }
    throw new RestartCopy(
      `the copy of chunk ${chunk.chunkIndex} still differs from its source after ${VERIFY_ROUNDS} rounds`,
    );
  }

  private async checkFault(plan: MovePlan): Promise<void> {
    const fault = await this.store.get(keys.mirrorFault(plan.volumeId, plan.chunkIndex));
    if (fault !== undefined) throw new RestartCopy("a mirrored write to the target failed");
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

  private client(serverId: string): StorageClient {
    const client = this.options.servers.clientFor(serverId);
    if (client === undefined)
      throw new MoveError("UNAVAILABLE", `storage server ${serverId} is not registered`);
    return client;
  }

  /** A storage call whose failure (other than a bad request) restarts the copy. */
  private async call<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (error instanceof StorageError && (error.code === "INVALID" || error.code === "UNAUTHENTICATED")) {
        throw new MoveError("FAILED", error.message, { cause: error });
      }
      if (error instanceof StorageError) throw new RestartCopy(`${error.code}: ${error.message}`);
      throw error;
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

/** Runs [start, count] of blocks whose checksums differ. */
export function differingRuns(a: Uint32Array, b: Uint32Array): [number, number][] {
  const runs: [number, number][] = [];
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] === b[i]) continue;
    const last = runs[runs.length - 1];
    if (last !== undefined && last[0] + last[1] === i) last[1]++;
    else runs.push([i, 1]);
  }
  return runs;
}
