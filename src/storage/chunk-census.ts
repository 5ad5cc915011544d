/**
 * Reads the whole routing table into one snapshot: which chunks each server holds, which chunks lack
 * replicas, which are moving. Status, drain and re-replication all plan from it.
 */

import { BLOCK_BYTES } from "../block/types.ts";
import type { CoordinationStore } from "../store/index.ts";
import {
  type ChunkRoute,
  chunkIndexOfKey,
  chunkRouteSchema,
  DEAD_PREFIX,
  DRAINING_PREFIX,
  decodeRecord,
  lastKeyPart,
  MOVES_PREFIX,
  ROUTING_PREFIX,
  VOLUMES_PREFIX,
  type VolumeRecord,
  volumeRecordSchema,
} from "./catalog.ts";

export interface ChunkEntry {
  readonly volume: VolumeRecord;
  readonly chunkIndex: number;
  readonly route: ChunkRoute;
  readonly chunkBytes: number;
}

export interface ChunkCensus {
  readonly volumes: readonly VolumeRecord[];
  readonly chunks: readonly ChunkEntry[];
  readonly dead: ReadonlySet<string>;
  readonly draining: ReadonlySet<string>;
  /** "volumeId/chunkIndex" of every chunk with a move in progress. */
  readonly moving: ReadonlySet<string>;
}

export const chunkTag = (volumeId: string, chunkIndex: number): string => `${volumeId}/${chunkIndex}`;

/** Reads every volume record. */
export async function listVolumes(store: CoordinationStore): Promise<VolumeRecord[]> {
  const { kvs } = await store.range(VOLUMES_PREFIX);
  return kvs.map((kv) => decodeRecord(volumeRecordSchema, kv.key, kv.value));
}

export async function takeCensus(store: CoordinationStore): Promise<ChunkCensus> {
  const volumes = await listVolumes(store);
  const byId = new Map(volumes.map((v) => [v.volumeId, v]));
  const { kvs } = await store.range(ROUTING_PREFIX);
  const chunks: ChunkEntry[] = [];
  for (const kv of kvs) {
    const volume = byId.get(kv.key.slice(ROUTING_PREFIX.length, kv.key.lastIndexOf("/")));
    if (volume === undefined) continue; // being created or deleted
    chunks.push({
      volume,
      chunkIndex: chunkIndexOfKey(kv.key),
      route: decodeRecord(chunkRouteSchema, kv.key, kv.value),
      chunkBytes: volume.chunkBlocks * BLOCK_BYTES,
    });
  }
  const ids = async (prefix: string) =>
    new Set((await store.range(prefix)).kvs.map((kv) => lastKeyPart(kv.key)));
  const moves = (await store.range(MOVES_PREFIX)).kvs.map((kv) =>
    chunkTag(kv.key.slice(MOVES_PREFIX.length, kv.key.lastIndexOf("/")), chunkIndexOfKey(kv.key)),
  );
  return {
    volumes,
    chunks,
    dead: await ids(DEAD_PREFIX),
    draining: await ids(DRAINING_PREFIX),
    moving: new Set(moves),
  };
}

/** Active replicas of a chunk that are not on a dead server. */
export function liveActiveReplicas(entry: ChunkEntry, dead: ReadonlySet<string>): string[] {
  return entry.route.replicas
    .filter((r) => r.state === "active" && !dead.has(r.serverId))
    .map((r) => r.serverId);
}

/** Bytes placed on each server according to a census. */
export function allocatedFromCensus(census: ChunkCensus): Map<string, number> {
  const allocated = new Map<string, number>();
  for (const entry of census.chunks) {
    for (const r of entry.route.replicas)
      allocated.set(r.serverId, (allocated.get(r.serverId) ?? 0) + entry.chunkBytes);
  }
  return allocated;
}

/** How a volume's chunks stand: how many lack replicas, have none live, or are moving. */
export interface VolumeHealth {
  readonly volumeId: string;
  readonly sizeBytes: number;
  readonly replicationFactor: number;
  readonly chunks: number;
  readonly underReplicated: number;
  readonly unavailable: number;
  readonly moving: number;
}

/** Servers whose replicas count as gone: declared dead, or named by a route but not registered. */
export function missingServers(
  census: ChunkCensus,
  isRegistered: (serverId: string) => boolean,
): Set<string> {
  const missing = new Set(census.dead);
  for (const entry of census.chunks)
    for (const r of entry.route.replicas) if (!isRegistered(r.serverId)) missing.add(r.serverId);
  return missing;
}

/** Each volume's health, counting replicas on `missing` servers (dead or unregistered) as gone. */
export function volumeHealth(census: ChunkCensus, missing: ReadonlySet<string>): VolumeHealth[] {
  return census.volumes.map((volume) => {
    const chunks = census.chunks.filter((c) => c.volume.volumeId === volume.volumeId);
    const live = chunks.map((c) => liveActiveReplicas(c, missing).length);
    return {
      volumeId: volume.volumeId,
      sizeBytes: volume.blockCount * BLOCK_BYTES,
      replicationFactor: volume.replicationFactor,
      chunks: chunks.length,
      underReplicated: live.filter((n) => n < volume.replicationFactor).length,
      unavailable: live.filter((n) => n === 0).length,
      moving: chunks.filter((c) => census.moving.has(chunkTag(volume.volumeId, c.chunkIndex))).length,
    };
  });
}
