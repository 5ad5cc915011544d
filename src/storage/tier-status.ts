/**
 * The storage tier as an operator sees it: each server's state, placement, published load with its
 * measure and hot flag, each volume's health, and the chunk moves in progress with how far each has
 * copied. Read from the coordination store; shared by `storage status --etcd` and the admin API.
 */
import type { Logger } from "pino";
import type { CoordinationStore } from "../store/index.ts";
import {
  chunkIndexOfKey,
  decodeRecord,
  LOADS_PREFIX,
  MOVES_PREFIX,
  type MoveIntent,
  moveIntentSchema,
  type ServerLoadRecord,
  serverLoadSchema,
} from "./catalog.ts";
import {
  allocatedFromCensus,
  type ChunkCensus,
  missingServers,
  takeCensus,
  type VolumeHealth,
  volumeHealth,
} from "./chunk-census.ts";
import { HOT_SHARE_DEFAULT, measureLoads } from "./load-measure.ts";
import type { ServerRegistry } from "./server-registry.ts";

/** A load record older than this is not believed (its server stopped publishing). */
export const LOAD_STALE_MS = 15_000;

/** The fresh load records the servers published; malformed ones are skipped (and logged). */
export async function readLoadRecords(
  store: CoordinationStore,
  log?: Logger,
  nowMs: number = Date.now(),
): Promise<ServerLoadRecord[]> {
  const { kvs } = await store.range(LOADS_PREFIX);
  const loads: ServerLoadRecord[] = [];
  for (const kv of kvs) {
    try {
      const load = decodeRecord(serverLoadSchema, kv.key, kv.value);
      if (nowMs - load.atMs < LOAD_STALE_MS) loads.push(load);
    } catch (error) {
      log?.warn({ err: error, key: kv.key }, "ignoring a malformed load record");
    }
  }
  return loads;
}

export interface ServerLoadStatus {
  readonly measure: number;
  readonly hot: boolean;
  readonly requestsPerSec: number;
  readonly bytesPerSec: number;
  readonly latencyP99Ms: number;
  readonly cpuBusy: number;
  readonly networkInBytesPerSec: number;
  readonly networkOutBytesPerSec: number;
  readonly requestsInFlight: number;
  readonly sequentialShare: number;
  readonly readShare: number;
}

export interface ServerStatus {
  readonly serverId: string;
  readonly state: "alive" | "draining" | "dead" | "missing";
  readonly address: string | null;
  readonly capacityBytes: number | null;
  readonly allocatedBytes: number;
  readonly chunks: number;
  /** null: no fresh load record (not publishing, or just started). */
  readonly load: ServerLoadStatus | null;
}

export interface MoveStatus {
  readonly volumeId: string;
  readonly chunkIndex: number;
  readonly from: string;
  readonly to: string;
  readonly reason: MoveIntent["reason"];
  readonly copiedBlocks: number;
  readonly chunkBlocks: number;
}

export interface TierStatus {
  readonly servers: ServerStatus[];
  readonly volumes: VolumeHealth[];
  readonly moves: MoveStatus[];
}

interface RegisteredServer {
  readonly serverId: string;
  readonly host: string;
  readonly port: number;
  readonly capacityBytes: number;
}

/** The status from what the store holds (pure). */
export function tierStatus(
  census: ChunkCensus,
  registered: readonly RegisteredServer[],
  loads: readonly ServerLoadRecord[],
  moves: readonly { volumeId: string; chunkIndex: number; intent: MoveIntent }[],
  isAlive: (serverId: string) => boolean,
  hotShare = HOT_SHARE_DEFAULT,
): TierStatus {
  const allocated = allocatedFromCensus(census);
  const chunkCounts = new Map<string, number>();
  for (const entry of census.chunks) {
    for (const r of entry.route.replicas) chunkCounts.set(r.serverId, (chunkCounts.get(r.serverId) ?? 0) + 1);
  }
  const measures = new Map(
    measureLoads(
      loads.map((l) => ({
        serverId: l.serverId,
        requestsPerSec: l.requestsPerSec,
        readBytesPerSec: l.readBytesPerSec,
        writeBytesPerSec: l.writeBytesPerSec,
        latencyP99Ms: l.latencyP99Ms,
        cpuBusy: l.cpuBusy,
        capacityBytes: l.capacityBytes,
        usedBytes: l.usedBytes,
      })),
      hotShare,
    ).map((m) => [m.serverId, m]),
  );
  const loadById = new Map(loads.map((l) => [l.serverId, l]));
  const ids = new Set([...registered.map((s) => s.serverId), ...chunkCounts.keys(), ...census.dead]);
  const servers = [...ids].sort().map((serverId): ServerStatus => {
    const record = registered.find((s) => s.serverId === serverId);
    const state: ServerStatus["state"] = census.dead.has(serverId)
      ? "dead"
      : record === undefined
        ? "missing"
        : census.draining.has(serverId)
          ? "draining"
          : "alive";
    const l = loadById.get(serverId);
    const m = measures.get(serverId);
    return {
      serverId,
      state,
      address: record === undefined ? null : `${record.host}:${record.port}`,
      capacityBytes: record?.capacityBytes ?? null,
      allocatedBytes: allocated.get(serverId) ?? 0,
      chunks: chunkCounts.get(serverId) ?? 0,
      load:
        l === undefined || m === undefined
          ? null
          : {
              measure: m.measure,
              hot: m.hot,
              requestsPerSec: l.requestsPerSec,
              bytesPerSec: l.readBytesPerSec + l.writeBytesPerSec,
              latencyP99Ms: l.latencyP99Ms,
              cpuBusy: l.cpuBusy,
              networkInBytesPerSec: l.networkInBytesPerSec,
              networkOutBytesPerSec: l.networkOutBytesPerSec,
              requestsInFlight: l.requestsInFlight,
              sequentialShare: l.sequentialShare,
              readShare: l.readShare,
            },
    };
  });
  const chunkBlocksOf = new Map(census.volumes.map((v) => [v.volumeId, v.chunkBlocks]));
  return {
    servers,
    volumes: volumeHealth(census, missingServers(census, isAlive)),
    moves: moves
      .map(({ volumeId, chunkIndex, intent }) => ({
        volumeId,
        chunkIndex,
        from: intent.from,
        to: intent.to,
        reason: intent.reason,
        copiedBlocks: intent.copiedBlocks,
        chunkBlocks: chunkBlocksOf.get(volumeId) ?? intent.copiedBlocks,
      }))
      .sort((a, b) => a.volumeId.localeCompare(b.volumeId) || a.chunkIndex - b.chunkIndex),
  };
}

/** The status as the store has it now. */
export async function readTierStatus(
  store: CoordinationStore,
  registry: ServerRegistry,
  log?: Logger,
): Promise<TierStatus> {
  const [census, loads, moveKvs] = await Promise.all([
    takeCensus(store),
    readLoadRecords(store, log),
    store.range(MOVES_PREFIX),
  ]);
  const moves = moveKvs.kvs.map((kv) => ({
    volumeId: kv.key.slice(MOVES_PREFIX.length, kv.key.lastIndexOf("/")),
    chunkIndex: chunkIndexOfKey(kv.key),
    intent: decodeRecord(moveIntentSchema, kv.key, kv.value),
  }));
  return tierStatus(census, registry.servers(), loads, moves, (id) => registry.isAlive(id));
}
