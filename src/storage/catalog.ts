/**
 * Where the storage tier keeps its state in the coordination store, and the typed records under
 * those keys. Every record is parsed at this edge: a malformed value is an error, never a guess.
 *
 *   storage/servers/<serverId>            ServerRecord, under the server's lease (it is alive)
 *   storage/volumes/<volumeId>            VolumeRecord
 *   storage/owners/<volumeId>             OwnerRecord: the volume's owner epoch (fencing)
 *   storage/routing/<volumeId>/<chunk>    ChunkRoute; its modRevision is the chunk's routing epoch
 *   storage/filers/<volumeId>/<filerId>   FilerAck, under the filer's lease: routing it has applied
 *   storage/moves/<volumeId>/<chunk>      MoveIntent: a chunk move in progress (resumable)
 *   storage/mirror-faults/<volumeId>/<chunk>  MirrorFault: a mirrored write to a filling replica failed
 *   storage/dead/<serverId>               DeadServer: declared dead; its chunks are being re-replicated
 *   storage/draining/<serverId>           Draining: no new chunks go there; its chunks are moving off
 */
import { z } from "zod";
import { SERVER_ID_PATTERN, VOLUME_ID_PATTERN } from "./types.ts";

const ROOT = "storage/";
export const SERVERS_PREFIX = `${ROOT}servers/`;
export const VOLUMES_PREFIX = `${ROOT}volumes/`;
export const OWNERS_PREFIX = `${ROOT}owners/`;
export const ROUTING_PREFIX = `${ROOT}routing/`;
export const FILERS_PREFIX = `${ROOT}filers/`;
export const MOVES_PREFIX = `${ROOT}moves/`;
export const MIRROR_FAULTS_PREFIX = `${ROOT}mirror-faults/`;
export const DEAD_PREFIX = `${ROOT}dead/`;
export const DRAINING_PREFIX = `${ROOT}draining/`;
export const LOADS_PREFIX = `${ROOT}loads/`;

/** Chunk indexes are fixed-width hex in keys so that key order is chunk order. */
const chunkKeyPart = (chunkIndex: number): string => chunkIndex.toString(16).padStart(8, "0");

export const keys = {
  server: (serverId: string) => `${SERVERS_PREFIX}${serverId}`,
  load: (serverId: string) => `${LOADS_PREFIX}${serverId}`,
  volume: (volumeId: string) => `${VOLUMES_PREFIX}${volumeId}`,
  owner: (volumeId: string) => `${OWNERS_PREFIX}${volumeId}`,
  routingOf: (volumeId: string) => `${ROUTING_PREFIX}${volumeId}/`,
  route: (volumeId: string, chunkIndex: number) => `${ROUTING_PREFIX}${volumeId}/${chunkKeyPart(chunkIndex)}`,
  filersOf: (volumeId: string) => `${FILERS_PREFIX}${volumeId}/`,
  filer: (volumeId: string, filerId: string) => `${FILERS_PREFIX}${volumeId}/${filerId}`,
  movesOf: (volumeId: string) => `${MOVES_PREFIX}${volumeId}/`,
  move: (volumeId: string, chunkIndex: number) => `${MOVES_PREFIX}${volumeId}/${chunkKeyPart(chunkIndex)}`,
  mirrorFaultsOf: (volumeId: string) => `${MIRROR_FAULTS_PREFIX}${volumeId}/`,
  mirrorFault: (volumeId: string, chunkIndex: number) =>
    `${MIRROR_FAULTS_PREFIX}${volumeId}/${chunkKeyPart(chunkIndex)}`,
  dead: (serverId: string) => `${DEAD_PREFIX}${serverId}`,
  draining: (serverId: string) => `${DRAINING_PREFIX}${serverId}`,
};

/** The chunk index at the end of a routing, move or mirror-fault key. */
export function chunkIndexOfKey(key: string): number {
  const part = key.slice(key.lastIndexOf("/") + 1);
  if (!/^[0-9a-f]{8}$/.test(part)) throw new CatalogError(`${key}: not a chunk key`);
  return Number.parseInt(part, 16);
}

/** The last path element of a key (a server, volume or filer id). */
export function lastKeyPart(key: string): string {
  return key.slice(key.lastIndexOf("/") + 1);
}

/** A stored record that does not parse: the catalog is damaged or written by a newer version. */
export class CatalogError extends Error {
  override name = "CatalogError";
}

const serverId = z.string().regex(SERVER_ID_PATTERN);
const volumeId = z.string().regex(VOLUME_ID_PATTERN);
const count = z.number().int().nonnegative();
const positive = z.number().int().positive();

export const serverRecordSchema = z.object({
  serverId,
  host: z.string().min(1).max(255),
  port: z.number().int().min(1).max(65535),
  capacityBytes: count,
  usedBytes: count,
});
export type ServerRecord = z.infer<typeof serverRecordSchema>;

const rate = z.number().nonnegative().finite();
const fraction = z.number().min(0).max(1);

/**
 * A storage server's load as its monitor measured it (see load-monitor.ts), published under its
 * lease every few seconds so the master and the other servers see the group's loads.
 */
export const serverLoadSchema = z.object({
  serverId,
  atMs: count,
  requestsPerSec: rate,
  readBytesPerSec: rate,
  writeBytesPerSec: rate,
  latencyP50Ms: rate,
  latencyP99Ms: rate,
  sequentialShare: fraction,
  readShare: fraction,
  requestsInFlight: count,
  /** 0..1 of its cores, over the last publishing interval. */
  cpuBusy: fraction,
  networkInBytesPerSec: rate,
  networkOutBytesPerSec: rate,
  capacityBytes: count,
  usedBytes: count,
  hotChunks: z
    .array(z.object({ volumeId, chunkIndex: count, requestsPerSec: rate, bytesPerSec: rate }))
    .max(64),
});
export type ServerLoadRecord = z.infer<typeof serverLoadSchema>;

export const volumeRecordSchema = z.object({
  volumeId,
  blockCount: positive,
  chunkBlocks: positive,
  replicationFactor: z.number().int().min(1).max(5),
});
export type VolumeRecord = z.infer<typeof volumeRecordSchema>;

export const ownerRecordSchema = z.object({
  epoch: count,
  /** Who took it last (a node or tool id), for operators. */
  owner: z.string().max(255),
});
export type OwnerRecord = z.infer<typeof ownerRecordSchema>;

export const replicaSchema = z.object({
  serverId,
  /** active: holds the chunk, serves reads. filling: being copied to; receives writes only. */
  state: z.enum(["active", "filling"]),
});
export type Replica = z.infer<typeof replicaSchema>;

export const chunkRouteSchema = z.object({ replicas: z.array(replicaSchema).min(1).max(8) });
export type ChunkRoute = z.infer<typeof chunkRouteSchema>;

export const filerAckSchema = z.object({ routingRevision: count });
export type FilerAck = z.infer<typeof filerAckSchema>;

export const moveIntentSchema = z.object({
  from: serverId,
  to: serverId,
  /** Copy generation: raised on every (re)start of the copy, so the target can refuse stale copiers. */
  generation: positive,
  /** Blocks copied so far (the checkpoint): a resumed copy starts here. */
  copiedBlocks: count,
  /** Why it moves: for progress and logs. */
  reason: z.enum(["drain", "rebalance", "re-replicate", "operator"]),
  /** For re-replication, `from` is the surviving source and the dead server is dropped, not `from`. */
  keepSource: z.boolean(),
});
export type MoveIntent = z.infer<typeof moveIntentSchema>;

export const mirrorFaultSchema = z.object({
  serverId,
  routingRevision: count,
  message: z.string().max(1024),
});
export type MirrorFault = z.infer<typeof mirrorFaultSchema>;

export const drainingSchema = z.object({ serverId, sinceMs: count });
export type Draining = z.infer<typeof drainingSchema>;

export const deadServerSchema = z.object({ serverId, declaredAtMs: count });
export type DeadServer = z.infer<typeof deadServerSchema>;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

export function encodeRecord<T>(schema: z.ZodType<T>, value: T): Uint8Array {
  return encoder.encode(JSON.stringify(schema.parse(value)));
}

export function decodeRecord<T>(schema: z.ZodType<T>, key: string, bytes: Uint8Array): T {
  let raw: unknown;
  try {
    raw = JSON.parse(decoder.decode(bytes));
  } catch (error) {
    throw new CatalogError(`${key}: not JSON`, { cause: error });
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new CatalogError(`${key}: ${parsed.error.message}`);
  return parsed.data;
}
