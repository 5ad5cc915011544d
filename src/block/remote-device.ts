/**
 * A block device whose blocks live on storage servers. The volume is cut into chunks; the routing
 * table (one key per chunk in the coordination store, watched) names each chunk's replicas. Writes
 * go to every replica; reads go to one active replica and fall back to the others, repairing a copy
 * that failed its checksum. Every request carries the owner epoch, so once a newer owner has fenced
 * the volume this device can neither read nor write it.
 *
 * Routing changes are acknowledged in the store (`storage/filers/<volume>/<filer>`) once every
 * request issued under an older routing has finished: a mover may start copying to a new replica,
 * or drop an old one, only after that acknowledgement.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { type Logger, pino } from "pino";
import {
  type ChunkRoute,
  chunkIndexOfKey,
  chunkRouteSchema,
  decodeRecord,
  encodeRecord,
  filerAckSchema,
  keys,
  mirrorFaultSchema,
  type VolumeRecord,
  volumeRecordSchema,
} from "../storage/catalog.ts";
import type { StorageClientSource } from "../storage/server-registry.ts";
import { type ChunkRef, REQUEST_BLOCKS_MAX, StorageError } from "../storage/types.ts";
import { takeOwnership } from "../storage/volumes.ts";
import type { CoordinationStore, KeyValue, Lease, WatchEvent } from "../store/index.ts";
import { type Follower, followPrefix } from "../store/index.ts";
import { assert } from "../util/assert.ts";
import { type Clock, systemClock } from "../util/clock.ts";
import { RwLock } from "../util/rw-lock.ts";
import { checkReadRange, checkWriteRange } from "./check-range.ts";
import { BLOCK_BYTES, type BlockDevice, BlockDeviceError } from "./types.ts";

export interface RemoteBlockDeviceOptions {
  readonly store: CoordinationStore;
  readonly servers: StorageClientSource;
  readonly volumeId: string;
  /** The epoch this owner took (see takeOwnership); every request carries it. */
  readonly ownerEpoch: number;
  /** Names this filer in routing acknowledgements. */
  readonly filerId: string;
  /** The filer's lease: its acknowledgement key vanishes with it, so a dead filer holds up nothing. */
  readonly lease?: Lease;
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** How long a request keeps retrying an unreachable replica before it fails with TIMEOUT. */
  readonly stallMaxMs?: number;
  readonly retryDelayMsMin?: number;
  readonly retryDelayMsMax?: number;
  /** Called once, when a storage server first refuses this owner as fenced: a newer owner exists. */
  readonly onFenced?: (error: BlockDeviceError) => void;
}

export const REMOTE_STALL_MAX_MS_DEFAULT = 60_000;

/** One request's slice of a chunk. */
interface Piece {
  readonly chunkIndex: number;
  readonly blockOffset: number;
  readonly blockCount: number;
  /** Offset of the piece in the caller's buffer, in blocks. */
  readonly bufferBlock: number;
}

export class RemoteBlockDevice implements BlockDevice {
  readonly blockCount: number;
  readonly holdsWritesBack = false;
  readonly volume: VolumeRecord;
  private readonly routes: ChunkRoute[];
  /** Each chunk's route key modRevision: the routing epoch a mirror fault is recorded against. */
  private readonly routeRevisions: number[];
  private revision: number;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly stallMaxMs: number;
  private readonly retryDelayMsMin: number;
  private readonly retryDelayMsMax: number;
  private follower: Follower | undefined;
  /** Requests in flight, by the routing revision they were issued under. */
  private readonly inFlightByRevision = new Map<number, number>();
  private ackWanted = 0;
  private ackedRevision = 0;
  private acking = false;
  /** Servers written to since the last flush began. */
  private dirtyServers = new Set<string>();
  /** Flushes under way: a later flush also waits for them, since they took servers it needs. */
  private readonly flushesInFlight = new Set<Promise<void>>();
  /** Writes take a chunk's lock shared; a read repair takes it exclusive, so it never undoes a write. */
  private readonly chunkLocks = new Map<number, RwLock>();
  /** Writes issued per chunk, so a read repair can tell that the blocks it read may be stale. */
  private readonly chunkWriteCounts = new Map<number, number>();
  private fencedError: BlockDeviceError | undefined;
  private closed = false;

  private readonly options: RemoteBlockDeviceOptions;

  private constructor(
    options: RemoteBlockDeviceOptions,
    volume: VolumeRecord,
    routes: ChunkRoute[],
    routeRevisions: number[],
    revision: number,
  ) {
    this.options = options;
    this.volume = volume;
    this.blockCount = volume.blockCount;
    this.routes = routes;
    this.routeRevisions = routeRevisions;
    this.revision = revision;
    this.clock = options.clock ?? systemClock;
    this.stallMaxMs = options.stallMaxMs ?? REMOTE_STALL_MAX_MS_DEFAULT;
    this.retryDelayMsMin = options.retryDelayMsMin ?? 20;
    this.retryDelayMsMax = options.retryDelayMsMax ?? 1000;
    this.log = (options.logger ?? pino({ level: "silent" })).child({
      component: "remote-device",
      volumeId: volume.volumeId,
      ownerEpoch: options.ownerEpoch,
    });
  }

  /**
   * Loads the volume's routing, fences every replica server with this owner's epoch (so the previous
   * owner is refused from now on), and starts following routing changes.
   */
  static async open(options: RemoteBlockDeviceOptions): Promise<RemoteBlockDevice> {
    const { store, volumeId } = options;
    assert(options.ownerEpoch > 0, "an owner epoch is positive");
    const volumeKv = await store.get(keys.volume(volumeId));
    if (volumeKv === undefined) throw new BlockDeviceError("IO", `volume ${volumeId} does not exist`);
    const volume = decodeRecord(volumeRecordSchema, volumeKv.key, volumeKv.value);
    const { kvs, revision } = await store.range(keys.routingOf(volumeId));
    const chunkCount = Math.ceil(volume.blockCount / volume.chunkBlocks);
    const routes: (ChunkRoute | undefined)[] = new Array(chunkCount).fill(undefined);
    const routeRevisions: number[] = new Array(chunkCount).fill(0);
    for (const kv of kvs) {
      const index = chunkIndexOfKey(kv.key);
      if (index >= chunkCount) throw new BlockDeviceError("IO", `${kv.key}: chunk beyond the volume`);
      routes[index] = decodeRecord(chunkRouteSchema, kv.key, kv.value);
      routeRevisions[index] = kv.modRevision;
    }
    const missing = routes.indexOf(undefined);
    if (missing >= 0) throw new BlockDeviceError("IO", `volume ${volumeId}: chunk ${missing} has no routing`);
    const device = new RemoteBlockDevice(options, volume, routes as ChunkRoute[], routeRevisions, revision);
    await device.fenceAll();
    device.follower = await followPrefix(
      store,
      keys.routingOf(volumeId),
      {
        onSnapshot: (snapshot) => device.onRoutingSnapshot(snapshot),
        onEvent: (event) => device.onRouting(event),
      },
      device.log,
    );
    device.ackWanted = revision;
    device.pumpAcks();
    return device;
  }

  /**
   * Takes the volume over for `filerId`: raises its owner epoch (so the previous owner is fenced)
   * and opens the device with the new epoch. What a node does to start serving a volume.
   */
  static async takeOver(
    options: Omit<RemoteBlockDeviceOptions, "ownerEpoch">,
  ): Promise<{ device: RemoteBlockDevice; epoch: number }> {
    const epoch = await takeOwnership(options.store, options.volumeId, options.filerId);
    return { device: await RemoteBlockDevice.open({ ...options, ownerEpoch: epoch }), epoch };
  }

  /** The routing revision this device has applied. */
  get routingRevision(): number {
    return this.revision;
  }

  /** The current route of a chunk (for tests and status). */
  routeOf(chunkIndex: number): ChunkRoute {
    const route = this.routes[chunkIndex];
    assert(route !== undefined, "chunk index within the volume");
    return route;
  }

  private routeRevisionOf(chunkIndex: number): number {
    const revision = this.routeRevisions[chunkIndex];
    assert(revision !== undefined, "chunk index within the volume");
    return revision;
  }

  async read(blockIndex: number, blockCount: number): Promise<Uint8Array> {
    this.checkOpen();
    checkReadRange(this.blockCount, blockIndex, blockCount);
    const out = new Uint8Array(blockCount * BLOCK_BYTES);
    await Promise.all(
      this.piecesOf(blockIndex, blockCount).map((piece) =>
        this.tracked(async () => {
          const data = await this.readPiece(piece);
          out.set(data, piece.bufferBlock * BLOCK_BYTES);
        }),
      ),
    );
    return out;
  }

  async write(blockIndex: number, data: Uint8Array): Promise<void> {
    this.checkOpen();
    checkWriteRange(this.blockCount, blockIndex, data);
    await Promise.all(
      this.piecesOf(blockIndex, data.length / BLOCK_BYTES).map((piece) =>
        this.tracked(() =>
          this.lockOf(piece.chunkIndex).shared(() =>
            this.writePiece(
              piece,
              data.subarray(
                piece.bufferBlock * BLOCK_BYTES,
                (piece.bufferBlock + piece.blockCount) * BLOCK_BYTES,
              ),
            ),
          ),
        ),
      ),
    );
  }

  async flush(): Promise<void> {
    this.checkOpen();
    const servers = this.dirtyServers;
    this.dirtyServers = new Set();
    // A write that finished before this call may have its server in an earlier flush's set, still
    // on its way: this flush is done only when those are too (and fails if one of them does).
    const earlier = [...this.flushesInFlight];
    const own = Promise.all(
      [...servers].map((serverId) => this.tracked(() => this.flushServer(serverId))),
    ).then(
      () => undefined,
      (error: unknown) => {
        // Whatever was not flushed must be flushed by the next attempt.
        for (const serverId of servers) this.dirtyServers.add(serverId);
        throw error;
      },
    );
    this.flushesInFlight.add(own);
    try {
      await Promise.all([own, ...earlier]);
    } finally {
      // `own` may still be running if an earlier one failed first; it leaves the set when it ends.
      void own.then(
        () => this.flushesInFlight.delete(own),
        () => this.flushesInFlight.delete(own),
      );
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.follower?.close();
    // A clean unmount: no mover needs to wait for this filer any more.
    await this.options.store
      .delete(keys.filer(this.volume.volumeId, this.options.filerId))
      .catch((error: unknown) => {
        this.log.warn({ err: error }, "could not withdraw the routing acknowledgement");
      });
  }

  /**
   * Stops without a clean unmount, as a crash would: routing is no longer followed and nothing is
   * flushed or withdrawn (the acknowledgement key goes with the filer's lease).
   */
  async abandon(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.follower?.close();
  }

  // --- Routing -----------------------------------------------------------------------------------

  /** A fresh snapshot (after a broken watch): apply every route newer than the one held. */
  private onRoutingSnapshot(kvs: readonly KeyValue[]): void {
    for (const kv of kvs) {
      const index = chunkIndexOfKey(kv.key);
      if (index < this.routes.length && kv.modRevision > (this.routeRevisions[index] ?? 0)) {
        this.onRouting({ type: "put", kv });
      }
    }
  }

  private onRouting(event: WatchEvent): void {
    if (event.type === "delete") {
      this.log.error({ key: event.key }, "a chunk's routing was deleted while the volume is in use");
      return;
    }
    let route: ChunkRoute;
    let chunkIndex: number;
    try {
      chunkIndex = chunkIndexOfKey(event.kv.key);
      route = decodeRecord(chunkRouteSchema, event.kv.key, event.kv.value);
    } catch (error) {
      this.log.error({ err: error }, "ignoring a malformed routing record");
      return;
    }
    if (chunkIndex >= this.routes.length) return;
    assert(
      event.kv.modRevision >= (this.routeRevisions[chunkIndex] ?? 0),
      "a route's revision never goes back",
    );
    this.routes[chunkIndex] = route;
    this.routeRevisions[chunkIndex] = event.kv.modRevision;
    this.revision = Math.max(this.revision, event.kv.modRevision);
    this.log.debug({ chunkIndex, route, revision: this.revision }, "routing changed");
    this.ackWanted = this.revision;
    this.pumpAcks();
  }

  private async tracked<T>(work: () => Promise<T>): Promise<T> {
    const revision = this.revision;
    this.inFlightByRevision.set(revision, (this.inFlightByRevision.get(revision) ?? 0) + 1);
    try {
      return await work();
    } finally {
      const left = (this.inFlightByRevision.get(revision) ?? 0) - 1;
      assert(left >= 0, "in-flight counts never go negative");
      if (left === 0) this.inFlightByRevision.delete(revision);
      else this.inFlightByRevision.set(revision, left);
      this.pumpAcks();
    }
  }

  /** Acknowledges the newest routing once nothing issued under an older one is still in flight. */
  private pumpAcks(): void {
    if (this.acking || this.closed || this.ackWanted <= this.ackedRevision) return;
    const wanted = this.ackWanted;
    for (const revision of this.inFlightByRevision.keys()) if (revision < wanted) return;
    this.acking = true;
    const key = keys.filer(this.volume.volumeId, this.options.filerId);
    const value = encodeRecord(filerAckSchema, { routingRevision: wanted });
    this.options.store
      .put(key, value, this.options.lease ? { lease: this.options.lease.id } : undefined)
      .then(
        () => {
          this.ackedRevision = Math.max(this.ackedRevision, wanted);
        },
        (error: unknown) => {
          this.log.warn({ err: error, wanted }, "routing acknowledgement failed; will retry");
          return sleep(this.retryDelayMsMax);
        },
      )
      .finally(() => {
        this.acking = false;
        this.pumpAcks();
      });
  }

  // --- Requests ----------------------------------------------------------------------------------

  private piecesOf(blockIndex: number, blockCount: number): Piece[] {
    const { chunkBlocks } = this.volume;
    const pieces: Piece[] = [];
    let done = 0;
    while (done < blockCount) {
      const block = blockIndex + done;
      const chunkIndex = Math.floor(block / chunkBlocks);
      const blockOffset = block - chunkIndex * chunkBlocks;
      const count = Math.min(blockCount - done, chunkBlocks - blockOffset, REQUEST_BLOCKS_MAX);
      pieces.push({ chunkIndex, blockOffset, blockCount: count, bufferBlock: done });
      done += count;
    }
    return pieces;
  }

  private chunkRef(chunkIndex: number): ChunkRef {
    return { volumeId: this.volume.volumeId, chunkIndex };
  }

  private lockOf(chunkIndex: number): RwLock {
    let lock = this.chunkLocks.get(chunkIndex);
    if (lock === undefined) {
      lock = new RwLock();
      this.chunkLocks.set(chunkIndex, lock);
    }
    return lock;
  }

  private async writePiece(piece: Piece, data: Uint8Array): Promise<void> {
    this.chunkWriteCounts.set(piece.chunkIndex, (this.chunkWriteCounts.get(piece.chunkIndex) ?? 0) + 1);
    const route = this.routeOf(piece.chunkIndex);
    const routeRevision = this.routeRevisionOf(piece.chunkIndex);
    await Promise.all(
      route.replicas.map((replica) => {
        this.dirtyServers.add(replica.serverId);
        return replica.state === "active"
          ? this.untilDone(piece, replica.serverId, "write", (client) =>
              client.write(this.chunkRef(piece.chunkIndex), this.options.ownerEpoch, piece.blockOffset, data),
            )
          : this.mirror(piece.chunkIndex, replica.serverId, routeRevision, (client) =>
              client.write(this.chunkRef(piece.chunkIndex), this.options.ownerEpoch, piece.blockOffset, data),
            );
      }),
    );
  }

  private async flushServer(serverId: string): Promise<void> {
    const holds = (state: "active" | "filling"): boolean =>
      this.routes.some((route) => route.replicas.some((r) => r.serverId === serverId && r.state === state));
    const flushOnce = (client: StorageClientLike) =>
      client.flush(this.volume.volumeId, this.options.ownerEpoch);
    if (holds("active")) {
      await this.untilDone(undefined, serverId, "flush", flushOnce);
      return;
    }
    // A server that only receives mirrored writes never fails the caller: its copies are restarted.
    const filling = this.routes.flatMap((route, chunkIndex) =>
      route.replicas.some((r) => r.serverId === serverId && r.state === "filling") ? [chunkIndex] : [],
    );
    const first = filling[0];
    if (first === undefined) return;
    const client = this.options.servers.clientFor(serverId);
    try {
      if (client === undefined)
        throw new StorageError("UNAVAILABLE", `storage server ${serverId} is not registered`);
      await flushOnce(client);
    } catch (error) {
      if (error instanceof StorageError && error.code === "FENCED") throw this.fence(serverId, error);
      const message = `flush failed: ${error instanceof Error ? error.message : String(error)}`;
      for (const chunkIndex of filling) {
        await this.recordMirrorFault(
          chunkIndex,
          serverId,
          this.routeRevisionOf(chunkIndex),
          message,
          flushOnce,
        );
      }
    }
  }

  /**
   * Sends a write or flush to an active replica until it succeeds. Retries while the replica is
   * unreachable, and stops (successfully) once the routing no longer names it: a server declared
   * dead has been replaced, and the other replicas hold the data.
   */
  private async untilDone(
    piece: Piece | undefined,
    serverId: string,
    what: string,
    call: (client: StorageClientLike) => Promise<void>,
  ): Promise<void> {
    const started = this.clock.monotonicMs();
    let delay = this.retryDelayMsMin;
    for (;;) {
      this.checkOpen();
      const stillNamed =
        piece === undefined
          ? this.routes.some((route) => route.replicas.some((r) => r.serverId === serverId))
          : this.routeOf(piece.chunkIndex).replicas.some((r) => r.serverId === serverId);
      if (!stillNamed) return;
      const outcome = await this.attempt(serverId, call);
      if (outcome === undefined) return;
      if (this.clock.monotonicMs() - started > this.stallMaxMs) {
        throw new BlockDeviceError(
          "TIMEOUT",
          `${what} to storage server ${serverId} did not succeed in ${this.stallMaxMs} ms: ${outcome.message}`,
          piece === undefined ? undefined : piece.chunkIndex * this.volume.chunkBlocks + piece.blockOffset,
          { cause: outcome },
        );
      }
      await sleep(delay);
      delay = Math.min(delay * 2, this.retryDelayMsMax);
    }
  }

  /** One call to one server: undefined on success, the error if it may be retried; throws if fatal. */
  private async attempt(
    serverId: string,
    call: (client: StorageClientLike) => Promise<void>,
  ): Promise<Error | undefined> {
    const client = this.options.servers.clientFor(serverId);
    if (client === undefined)
      return new StorageError("UNAVAILABLE", `storage server ${serverId} is not registered`);
    try {
      await call(client);
      return undefined;
    } catch (error) {
      if (!(error instanceof StorageError)) throw error;
      if (error.code === "FENCED") throw this.fence(serverId, error);
      if (error.code === "UNAVAILABLE" || error.code === "IO") return error;
      throw new BlockDeviceError("IO", `storage server ${serverId}: ${error.message}`, undefined, {
        cause: error,
      });
    }
  }

  /**
   * A request to a replica being filled: it must never fail the caller. On failure the chunk's copy
   * must restart, which this records as a mirror fault. Resolves false on failure.
   */
  private async mirror(
    chunkIndex: number,
    serverId: string,
    routeRevision: number,
    call: (client: StorageClientLike) => Promise<void>,
  ): Promise<boolean> {
    const client = this.options.servers.clientFor(serverId);
    try {
      if (client === undefined)
        throw new StorageError("UNAVAILABLE", `storage server ${serverId} is not registered`);
      await call(client);
      return true;
    } catch (error) {
      if (error instanceof StorageError && error.code === "FENCED") throw this.fence(serverId, error);
      const message = error instanceof Error ? error.message : String(error);
      await this.recordMirrorFault(chunkIndex, serverId, routeRevision, message, call);
      return false;
    }
  }

  /**
   * Records that `serverId` missed a mirrored request, against the route revision it was sent under.
   * The mover switches a filled replica to active only while no fault is recorded and the route is
   * unchanged, in one transaction; so either this record lands first (the copy restarts), or the
   * switch did (the replica is active now, and the request is retried like any active one).
   */
  private async recordMirrorFault(
    chunkIndex: number,
    serverId: string,
    routeRevision: number,
    message: string,
    call: (client: StorageClientLike) => Promise<void>,
  ): Promise<void> {
    this.log.warn(
      { chunkIndex, serverId, message },
      "mirrored request failed; the chunk's copy must restart",
    );
    const routeKey = keys.route(this.volume.volumeId, chunkIndex);
    const fault = encodeRecord(mirrorFaultSchema, {
      serverId,
      routingRevision: routeRevision,
      message: message.slice(0, 1024),
    });
    const started = this.clock.monotonicMs();
    let revision = routeRevision;
    let delay = this.retryDelayMsMin;
    for (;;) {
      this.checkOpen();
      try {
        const result = await this.options.store.txn(
          [{ key: routeKey, target: "mod", equals: revision }],
          [{ op: "put", key: keys.mirrorFault(this.volume.volumeId, chunkIndex), value: fault }],
          [{ op: "get", key: routeKey }],
        );
        if (result.succeeded) return;
        const kv = result.gets[0];
        const replica =
          kv === undefined
            ? undefined
            : decodeRecord(chunkRouteSchema, kv.key, kv.value).replicas.find((r) => r.serverId === serverId);
        if (kv === undefined || replica === undefined) return; // the target left the route: nothing to restart
        if (replica.state === "active") {
          await this.untilDone(undefined, serverId, "mirrored request", call);
          return;
        }
        revision = kv.modRevision;
        continue;
      } catch (error) {
        if (error instanceof BlockDeviceError) throw error;
        // Until the fault is on record a switch could make a stale copy live: keep trying, bounded.
        if (this.clock.monotonicMs() - started > this.stallMaxMs) {
          throw new BlockDeviceError(
            "TIMEOUT",
            `could not record a mirror fault of chunk ${chunkIndex}: ${String(error)}`,
            undefined,
            { cause: error },
          );
        }
        this.log.warn({ err: error, chunkIndex }, "could not record a mirror fault yet");
      }
      await sleep(delay);
      delay = Math.min(delay * 2, this.retryDelayMsMax);
    }
  }

  private async readPiece(piece: Piece): Promise<Uint8Array> {
    const started = this.clock.monotonicMs();
    const writesBefore = this.chunkWriteCounts.get(piece.chunkIndex) ?? 0;
    let delay = this.retryDelayMsMin;
    for (;;) {
      this.checkOpen();
      const actives = this.routeOf(piece.chunkIndex).replicas.filter((r) => r.state === "active");
      const damaged: string[] = [];
      const failures: string[] = [];
      let transient = false;
      for (let i = 0; i < actives.length; i++) {
        // Spread reads of different chunks over the replicas.
        const serverId = (actives[(piece.chunkIndex + i) % actives.length] as { serverId: string }).serverId;
        const client = this.options.servers.clientFor(serverId);
        if (client === undefined) {
          transient = true;
          failures.push(`${serverId}: not registered`);
          continue;
        }
        try {
          const data = await client.read(
            this.chunkRef(piece.chunkIndex),
            this.options.ownerEpoch,
            piece.blockOffset,
            piece.blockCount,
          );
          if (damaged.length > 0) await this.repair(piece, damaged, data, writesBefore);
          return data;
        } catch (error) {
          if (!(error instanceof StorageError)) throw error;
          if (error.code === "FENCED") throw this.fence(serverId, error);
          failures.push(`${serverId}: ${error.message}`);
          if (error.code === "CHECKSUM" || error.code === "NO_CHUNK") damaged.push(serverId);
          else transient = true;
        }
      }
      const firstBlock = piece.chunkIndex * this.volume.chunkBlocks + piece.blockOffset;
      if (!transient) {
        throw new BlockDeviceError(
          "IO",
          `no good copy of blocks at ${firstBlock}: ${failures.join("; ")}`,
          firstBlock,
        );
      }
      if (this.clock.monotonicMs() - started > this.stallMaxMs) {
        throw new BlockDeviceError(
          "TIMEOUT",
          `read of blocks at ${firstBlock} did not succeed in ${this.stallMaxMs} ms: ${failures.join("; ")}`,
          firstBlock,
        );
      }
      await sleep(delay);
      delay = Math.min(delay * 2, this.retryDelayMsMax);
    }
  }

  /**
   * Rewrites a good copy over replicas that failed their checksum. Skipped if this device wrote to
   * the chunk since the read began: the data read may already be older than what is stored.
   */
  private async repair(
    piece: Piece,
    damaged: readonly string[],
    data: Uint8Array,
    writesBefore: number,
  ): Promise<void> {
    await this.lockOf(piece.chunkIndex).exclusive(async () => {
      if ((this.chunkWriteCounts.get(piece.chunkIndex) ?? 0) !== writesBefore) return;
      for (const serverId of damaged) {
        const client = this.options.servers.clientFor(serverId);
        if (client === undefined) continue;
        try {
          await client.write(
            this.chunkRef(piece.chunkIndex),
            this.options.ownerEpoch,
            piece.blockOffset,
            data,
          );
          this.dirtyServers.add(serverId);
          this.log.warn(
            {
              serverId,
              chunkIndex: piece.chunkIndex,
              blockOffset: piece.blockOffset,
              blockCount: piece.blockCount,
            },
            "read repair: rewrote a damaged copy",
          );
        } catch (error) {
          if (error instanceof StorageError && error.code === "FENCED") throw this.fence(serverId, error);
          this.log.error({ err: error, serverId, chunkIndex: piece.chunkIndex }, "read repair failed");
        }
      }
    });
  }

  private async fenceAll(): Promise<void> {
    const serverIds = new Set(this.routes.flatMap((route) => route.replicas.map((r) => r.serverId)));
    await Promise.all(
      [...serverIds].map(async (serverId) => {
        const client = this.options.servers.clientFor(serverId);
        try {
          if (client === undefined) throw new StorageError("UNAVAILABLE", "not registered");
          await client.fence(this.volume.volumeId, this.options.ownerEpoch);
        } catch (error) {
          if (error instanceof StorageError && error.code === "FENCED") throw this.fence(serverId, error);
          // It learns the epoch from the store before it serves again.
          this.log.warn({ err: error, serverId }, "could not fence a storage server now");
        }
      }),
    );
  }

  private fence(serverId: string, cause: StorageError): BlockDeviceError {
    this.fencedError ??= new BlockDeviceError(
      "FENCED",
      `volume ${this.volume.volumeId}: owner epoch ${this.options.ownerEpoch} was fenced by a newer owner (seen at ${serverId})`,
      undefined,
      { cause },
    );
    if (this.fencedError.cause === cause) {
      this.log.error("fenced: a newer owner holds the volume; this device refuses all further I/O");
      this.options.onFenced?.(this.fencedError);
    }
    return this.fencedError;
  }

  private checkOpen(): void {
    if (this.fencedError !== undefined) throw this.fencedError;
    if (this.closed) throw new BlockDeviceError("IO", `volume ${this.volume.volumeId}: device is closed`);
  }
}

type StorageClientLike = NonNullable<ReturnType<StorageClientSource["clientFor"]>>;
