/**
 * The balancer's view of the storage tier, from what the store holds: the chunk census and the loads
 * the servers published. Pure. The load balanced is client requests per second (the monitors' decayed
 * rates are the smoothing); a chunk's heat is the most any server reported for it, counted on the
 * servers the census says hold it now, and a server's load that its reported hot chunks do not
 * explain is its base load.
 */
import type { BalanceChunk, BalanceInput, BalanceServer } from "./balance-plan.ts";
import type { ServerLoadRecord } from "./catalog.ts";
import {
  allocatedFromCensus,
  type ChunkCensus,
  chunkTag,
  missingServers,
  volumeHealth,
} from "./chunk-census.ts";

export interface RegisteredServer {
  readonly serverId: string;
  readonly capacityBytes: number;
}

export function balanceInput(
  census: ChunkCensus,
  loads: readonly ServerLoadRecord[],
  registered: readonly RegisteredServer[],
): BalanceInput {
  const alive = new Set(registered.map((s) => s.serverId));
  const missing = missingServers(census, (id) => alive.has(id));
  const degraded = volumeHealth(census, missing).some((v) => v.underReplicated > 0);
  const allocated = allocatedFromCensus(census);
  const loadOf = new Map(loads.map((l) => [l.serverId, l]));
  const heat = new Map<string, number>();
  for (const load of loads)
    for (const hot of load.hotChunks) {
      const tag = chunkTag(hot.volumeId, hot.chunkIndex);
      heat.set(tag, Math.max(heat.get(tag) ?? 0, hot.requestsPerSec));
    }
  const chunks: BalanceChunk[] = [];
  for (const entry of census.chunks) {
    const tag = chunkTag(entry.volume.volumeId, entry.chunkIndex);
    const h = heat.get(tag);
    if (h === undefined) continue;
    chunks.push({
      volumeId: entry.volume.volumeId,
      chunkIndex: entry.chunkIndex,
      bytes: entry.chunkBytes,
      replicas: entry.route.replicas.map((r) => r.serverId),
      heat: h,
      moving: census.moving.has(tag) || entry.route.replicas.some((r) => r.state !== "active"),
    });
  }
  // What a server reported of its hot chunks is explained, whether it still holds them or not (a
  // moved chunk's rate fades on its old server only over the monitor's half-life).
  const explained = new Map<string, number>();
  for (const load of loads)
    explained.set(
      load.serverId,
      load.hotChunks.reduce((sum, hot) => sum + hot.requestsPerSec, 0),
    );
  const servers: BalanceServer[] = registered.map((s) => ({
    serverId: s.serverId,
    usable: !census.draining.has(s.serverId) && !census.dead.has(s.serverId) && loadOf.has(s.serverId),
    baseLoad: Math.max(0, (loadOf.get(s.serverId)?.requestsPerSec ?? 0) - (explained.get(s.serverId) ?? 0)),
    capacityBytes: s.capacityBytes,
    allocatedBytes: allocated.get(s.serverId) ?? 0,
  }));
  return { servers, chunks, inFlight: census.moving.size, degraded };
}
