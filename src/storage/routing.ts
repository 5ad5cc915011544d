/** Reading and changing one chunk's route by compare-and-swap. */
import type { CoordinationStore } from "../store/index.ts";
import { type ChunkRoute, chunkRouteSchema, decodeRecord, encodeRecord, keys } from "./catalog.ts";

export class RouteError extends Error {
  override name = "RouteError";
  readonly code: "NOT_FOUND" | "BUSY";
  constructor(code: RouteError["code"], message: string) {
    super(message);
    this.code = code;
  }
}

export interface StoredRoute {
  readonly route: ChunkRoute;
  /** The route key's modRevision: the chunk's routing epoch. */
  readonly modRevision: number;
}

export async function readRoute(
  store: CoordinationStore,
  volumeId: string,
  chunkIndex: number,
): Promise<StoredRoute> {
  const kv = await store.get(keys.route(volumeId, chunkIndex));
  if (kv === undefined) throw new RouteError("NOT_FOUND", `chunk ${chunkIndex} of ${volumeId} has no route`);
  return { route: decodeRecord(chunkRouteSchema, kv.key, kv.value), modRevision: kv.modRevision };
}

/**
 * Applies `change` to the chunk's route by compare-and-swap, re-reading on conflict; resolves with the
 * stored result (unchanged if `change` returned an equal route). `change` may throw to refuse.
 */
export async function updateRoute(
  store: CoordinationStore,
  volumeId: string,
  chunkIndex: number,
  change: (route: ChunkRoute) => ChunkRoute,
): Promise<StoredRoute> {
  const key = keys.route(volumeId, chunkIndex);
  for (let attempt = 0; attempt < 20; attempt++) {
    const current = await readRoute(store, volumeId, chunkIndex);
    const next = change(current.route);
    if (JSON.stringify(next) === JSON.stringify(current.route)) return current;
    const result = await store.txn(
      [{ key, target: "mod", equals: current.modRevision }],
      [{ op: "put", key, value: encodeRecord(chunkRouteSchema, next) }],
    );
    if (result.succeeded) return { route: next, modRevision: result.revision };
  }
  throw new RouteError("BUSY", `chunk ${chunkIndex} of ${volumeId}: its route keeps changing`);
}
