/**
 * Volume lifecycle in the storage tier: create (place chunks, make them on their servers, publish the
 * routing), take ownership (raise the owner epoch, which fences the previous owner), delete.
 */

import { BLOCK_BYTES } from "../block/types.ts";
import type { CoordinationStore, TxnOp } from "../store/index.ts";
import {
  CatalogError,
  type ChunkRoute,
  chunkRouteSchema,
  decodeRecord,
  encodeRecord,
  keys,
  ownerRecordSchema,
  type VolumeRecord,
  volumeRecordSchema,
} from "./catalog.ts";
import { allocatedFromCensus, takeCensus } from "./chunk-census.ts";
import { placeChunks, type ServerSpace } from "./placement.ts";
import type { ServerRegistry } from "./server-registry.ts";
import { CHUNK_BLOCKS_DEFAULT, CHUNK_BLOCKS_MAX, StorageError, VOLUME_ID_PATTERN } from "./types.ts";

/** Routing keys written per transaction (etcd allows 128 operations in one). */
const ROUTES_PER_TXN = 100;
/** Chunks made on servers at once while creating a volume. */
const CREATE_CONCURRENCY = 16;

export class VolumeError extends Error {
  override name = "VolumeError";
  readonly code: "EXISTS" | "NOT_FOUND" | "INVALID" | "NO_SPACE" | "UNAVAILABLE";
  constructor(code: VolumeError["code"], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

export interface CreateVolumeOptions {
  readonly volumeId: string;
  readonly sizeBytes: number;
  /** Default: 2 when two or more storage servers are alive, else 1. */
  readonly replicationFactor?: number;
  readonly chunkBlocks?: number;
}

export async function getVolume(store: CoordinationStore, volumeId: string): Promise<VolumeRecord> {
  const kv = await store.get(keys.volume(volumeId));
  if (kv === undefined) throw new VolumeError("NOT_FOUND", `volume ${volumeId} does not exist`);
  return decodeRecord(volumeRecordSchema, kv.key, kv.value);
}

/** Every chunk's route of one volume, indexed by chunk, with each key's modRevision. */
export async function readRouting(
  store: CoordinationStore,
  volume: VolumeRecord,
): Promise<{ routes: { route: ChunkRoute; modRevision: number }[]; revision: number }> {
  const { kvs, revision } = await store.range(keys.routingOf(volume.volumeId));
  const chunkCount = chunkCountOf(volume);
  if (kvs.length !== chunkCount) {
    throw new CatalogError(`volume ${volume.volumeId}: ${kvs.length} routes for ${chunkCount} chunks`);
  }
  return {
    routes: kvs.map((kv) => ({
      route: decodeRecord(chunkRouteSchema, kv.key, kv.value),
      modRevision: kv.modRevision,
    })),
    revision,
  };
}

export function chunkCountOf(volume: VolumeRecord): number {
  return Math.ceil(volume.blockCount / volume.chunkBlocks);
}

/** Free space of every live server that may take new chunks (not draining, not declared dead). */
export async function serverSpaces(
  store: CoordinationStore,
  registry: ServerRegistry,
): Promise<ServerSpace[]> {
  const census = await takeCensus(store);
  const allocated = allocatedFromCensus(census);
  return registry
    .servers()
    .filter((s) => !census.draining.has(s.serverId) && !census.dead.has(s.serverId))
    .map((s) => ({
      serverId: s.serverId,
      capacityBytes: s.capacityBytes,
      allocatedBytes: allocated.get(s.serverId) ?? 0,
    }));
}

/**
 * Creates a volume: claims its id, places its chunks by free space, makes every chunk on its servers,
 * then publishes the routing and the volume record. On failure it removes what it made.
 */
export async function createVolume(
  store: CoordinationStore,
  registry: ServerRegistry,
  options: CreateVolumeOptions,
): Promise<VolumeRecord> {
  const { volumeId, sizeBytes } = options;
  if (!VOLUME_ID_PATTERN.test(volumeId)) {
    throw new VolumeError("INVALID", `volume id "${volumeId}" must match ${VOLUME_ID_PATTERN.source}`);
  }
  const chunkBlocks = options.chunkBlocks ?? CHUNK_BLOCKS_DEFAULT;
  if (!Number.isInteger(chunkBlocks) || chunkBlocks < 1 || chunkBlocks > CHUNK_BLOCKS_MAX) {
    throw new VolumeError(
      "INVALID",
      `chunk size must be 1 to ${CHUNK_BLOCKS_MAX} blocks, got ${chunkBlocks}`,
    );
  }
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes % BLOCK_BYTES !== 0) {
    throw new VolumeError("INVALID", `volume size must be a positive multiple of ${BLOCK_BYTES} bytes`);
  }
  const alive = registry.servers().length;
  const replicationFactor = options.replicationFactor ?? (alive >= 2 ? 2 : 1);
  const volume: VolumeRecord = {
    volumeId,
    blockCount: sizeBytes / BLOCK_BYTES,
    chunkBlocks,
    replicationFactor,
  };
  encodeRecord(volumeRecordSchema, volume); // validates the factor's bounds before anything is made

  const spaces = await serverSpaces(store, registry);
  let placement: string[][];
  try {
    placement = placeChunks(spaces, chunkCountOf(volume), chunkBlocks * BLOCK_BYTES, replicationFactor);
  } catch (error) {
    throw new VolumeError("NO_SPACE", `cannot place volume ${volumeId}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  // Claim the id through its owner record: of two concurrent creates, one changes it first and the
  // other's compare fails. A deleted volume leaves its owner record behind, so a volume made again
  // under the same id goes on from the old epoch: servers remember epochs, and would fence a restart.
  const ownerKv = await store.get(keys.owner(volumeId));
  const previousEpoch =
    ownerKv === undefined ? 0 : decodeRecord(ownerRecordSchema, ownerKv.key, ownerKv.value).epoch;
  const claimed = await store.txn(
    [
      { key: keys.volume(volumeId), target: "create", equals: 0 },
      { key: keys.owner(volumeId), target: "mod", equals: ownerKv?.modRevision ?? 0 },
    ],
    [
      {
        op: "put",
        key: keys.owner(volumeId),
        value: encodeRecord(ownerRecordSchema, { epoch: previousEpoch, owner: "creating" }),
      },
    ],
  );
  if (!claimed.succeeded) throw new VolumeError("EXISTS", `volume ${volumeId} already exists`);
  try {
    await runBounded(placement.length, CREATE_CONCURRENCY, async (chunkIndex) => {
      const replicas = placement[chunkIndex] ?? [];
      await Promise.all(
        replicas.map(async (serverId) => {
          const client = registry.clientFor(serverId);
          if (client === undefined) throw new StorageError("UNAVAILABLE", `storage server ${serverId} left`);
          await client.createChunk({ volumeId, chunkIndex }, 0);
        }),
      );
    });
    // Servers may remember a higher epoch than the store (an owner record lost with its store):
    // start above every one of them.
    const serverIds = [...new Set(placement.flat())];
    const epochs = await Promise.all(
      serverIds.map((id) => registry.clientFor(id)?.ownerEpoch(volumeId) ?? 0),
    );
    const epoch = Math.max(previousEpoch, ...epochs);
    await store.put(keys.owner(volumeId), encodeRecord(ownerRecordSchema, { epoch, owner: "" }));
    for (let first = 0; first < placement.length; first += ROUTES_PER_TXN) {
      const ops: TxnOp[] = placement.slice(first, first + ROUTES_PER_TXN).map((replicas, i) => ({
        op: "put",
        key: keys.route(volumeId, first + i),
        value: encodeRecord(chunkRouteSchema, {
          replicas: replicas.map((serverId) => ({ serverId, state: "active" as const })),
        }),
      }));
      await store.txn([], ops);
    }
    // The volume record last: a volume is visible only once all of its routing is in place.
    await store.put(keys.volume(volumeId), encodeRecord(volumeRecordSchema, volume));
    return volume;
  } catch (error) {
    await removeVolumeRecords(store, volume).catch(() => undefined);
    throw error instanceof StorageError
      ? new VolumeError("UNAVAILABLE", `cannot create volume ${volumeId}: ${error.message}`, { cause: error })
      : error;
  }
}

/**
 * Raises the volume's owner epoch by one and records the new owner. The caller then opens a remote
 * device with the epoch it got, which fences every storage server against the previous owner.
 */
export async function takeOwnership(
  store: CoordinationStore,
  volumeId: string,
  owner: string,
): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const kv = await store.get(keys.owner(volumeId));
    if (kv === undefined) throw new VolumeError("NOT_FOUND", `volume ${volumeId} does not exist`);
    const current = decodeRecord(ownerRecordSchema, kv.key, kv.value);
    const epoch = current.epoch + 1;
    const result = await store.txn(
      [{ key: kv.key, target: "mod", equals: kv.modRevision }],
      [{ op: "put", key: kv.key, value: encodeRecord(ownerRecordSchema, { epoch, owner }) }],
    );
    if (result.succeeded) return epoch;
  }
  throw new VolumeError("UNAVAILABLE", `volume ${volumeId}: ownership kept changing under 100 attempts`);
}

/** Deletes a volume: its records first (no new owner can open it), then its chunks on every server. */
export async function deleteVolume(
  store: CoordinationStore,
  registry: ServerRegistry,
  volumeId: string,
): Promise<void> {
  const volume = await getVolume(store, volumeId);
  const { routes } = await readRouting(store, volume);
  await store.delete(keys.volume(volumeId));
  await runBounded(routes.length, CREATE_CONCURRENCY, async (chunkIndex) => {
    const route = routes[chunkIndex]?.route;
    if (route === undefined) return;
    await Promise.all(
      route.replicas.map((r) =>
        registry
          .clientFor(r.serverId)
          ?.dropChunk({ volumeId, chunkIndex })
          .catch(() => undefined),
      ),
    );
  });
  await removeVolumeRecords(store, volume);
}

async function removeVolumeRecords(store: CoordinationStore, volume: VolumeRecord): Promise<void> {
  const chunkCount = chunkCountOf(volume);
  for (let first = 0; first < chunkCount; first += ROUTES_PER_TXN) {
    const ops: TxnOp[] = [];
    for (let i = first; i < Math.min(chunkCount, first + ROUTES_PER_TXN); i++) {
      ops.push({ op: "delete", key: keys.route(volume.volumeId, i) });
    }
    await store.txn([], ops);
  }
  // The owner record stays: its epoch must never go back, should the id be used again.
  await store.delete(keys.volume(volume.volumeId));
}

/** Runs `work(0..count-1)` with at most `concurrency` at once; the first failure fails the whole. */
export async function runBounded(
  count: number,
  concurrency: number,
  work: (index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) await work(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}
