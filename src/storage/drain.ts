/**
 * Drains a storage server: marks it draining (no new chunk goes there), then moves every chunk it
 * holds to the server with the most free space that does not hold that chunk yet.
 */
import { type Logger, pino } from "pino";
import type { CoordinationStore } from "../store/index.ts";
import { type Draining, drainingSchema, encodeRecord, keys } from "./catalog.ts";
import { allocatedFromCensus, chunkTag, takeCensus } from "./chunk-census.ts";
import { type ChunkMover, MoveError, type MovePlan } from "./chunk-mover.ts";
import { chooseTarget } from "./placement.ts";
import type { ServerRegistry } from "./server-registry.ts";

export interface DrainProgress {
  readonly chunksTotal: number;
  readonly chunksDone: number;
  readonly bytesTotal: number;
  readonly bytesDone: number;
}

export class DrainError extends Error {
  override name = "DrainError";
}

export interface DrainOptions {
  readonly store: CoordinationStore;
  readonly registry: ServerRegistry;
  readonly mover: ChunkMover;
  readonly logger?: Logger;
  /** Called after every copied range and every finished chunk. */
  readonly onProgress?: (progress: DrainProgress) => void;
  /** Bytes copied so far, as the mover reports them (the caller wires the mover's onProgress here). */
  readonly bytesMoved?: () => number;
}

/** The plans that move every chunk off `serverId`; throws DrainError if one has nowhere to go. */
async function planDrain(
  options: DrainOptions,
  serverId: string,
): Promise<{ plans: MovePlan[]; bytes: number[] }> {
  const census = await takeCensus(options.store);
  const allocated = allocatedFromCensus(census);
  const spaces = options.registry.servers().map((s) => ({
    serverId: s.serverId,
    capacityBytes: s.capacityBytes,
    allocatedBytes: allocated.get(s.serverId) ?? 0,
  }));
  const plans: MovePlan[] = [];
  const bytes: number[] = [];
  for (const entry of census.chunks) {
    const here = entry.route.replicas.find((r) => r.serverId === serverId);
    if (here === undefined) continue;
    const { volumeId } = entry.volume;
    if (census.moving.has(chunkTag(volumeId, entry.chunkIndex))) {
      throw new DrainError(
        `chunk ${entry.chunkIndex} of ${volumeId} is already moving; try again when it is done`,
      );
    }
    if (here.state !== "active") {
      throw new DrainError(
        `chunk ${entry.chunkIndex} of ${volumeId} is being filled on ${serverId}; try again later`,
      );
    }
    const excluded = new Set([
      ...entry.route.replicas.map((r) => r.serverId),
      ...census.dead,
      ...census.draining,
      serverId,
    ]);
    const to = chooseTarget(spaces, excluded, entry.chunkBytes);
    if (to === undefined) {
      const others = spaces.filter((s) => !excluded.has(s.serverId)).length;
      throw new DrainError(
        `cannot drain ${serverId}: chunk ${entry.chunkIndex} of ${volumeId} has nowhere to go ` +
          `(${others} other eligible servers, none with ${entry.chunkBytes} bytes free)`,
      );
    }
    const space = spaces.find((s) => s.serverId === to);
    if (space !== undefined)
      Object.assign(space, { allocatedBytes: space.allocatedBytes + entry.chunkBytes });
    plans.push({
      volumeId,
      chunkIndex: entry.chunkIndex,
      from: serverId,
      to,
      reason: "drain",
      keepSource: false,
    });
    bytes.push(entry.chunkBytes);
  }
  return { plans, bytes };
}

/**
 * Moves every chunk off `serverId`. Resolves when the server holds no chunk; throws DrainError with
 * the reason when it cannot (no room elsewhere, moves failing). The server stays marked draining
 * either way; `undrain` lets it take chunks again.
 */
export async function drainServer(options: DrainOptions, serverId: string): Promise<DrainProgress> {
  const log = (options.logger ?? pino({ level: "silent" })).child({ component: "drain", serverId });
  if (!options.registry.isAlive(serverId)) {
    throw new DrainError(
      `storage server ${serverId} is not registered (unknown or dead): nothing can be copied from it`,
    );
  }
  const draining: Draining = { serverId, sinceMs: Date.now() };
  await options.store.put(keys.draining(serverId), encodeRecord(drainingSchema, draining));
  const { plans, bytes } = await planDrain(options, serverId);
  const bytesTotal = bytes.reduce((a, b) => a + b, 0);
  let chunksDone = 0;
  const startBytes = options.bytesMoved?.() ?? 0;
  const report = (): DrainProgress => {
    const progress = {
      chunksTotal: plans.length,
      chunksDone,
      bytesTotal,
      bytesDone: Math.min(bytesTotal, (options.bytesMoved?.() ?? 0) - startBytes),
    };
    options.onProgress?.(progress);
    return progress;
  };
  log.info({ chunks: plans.length, bytes: bytesTotal }, "draining");
  report();
  const failures: string[] = [];
  await Promise.all(
    plans.map(async (plan) => {
      try {
        await options.mover.move(plan);
        chunksDone++;
      } catch (error) {
        failures.push(
          `chunk ${plan.chunkIndex} of ${plan.volumeId}: ${error instanceof MoveError ? error.message : String(error)}`,
        );
      }
      report();
    }),
  );
  if (failures.length > 0) {
    throw new DrainError(
      `${failures.length} of ${plans.length} chunks could not be moved off ${serverId}: ${failures.slice(0, 5).join("; ")}` +
        (failures.length > 5 ? `; and ${failures.length - 5} more` : ""),
    );
  }
  log.info("drained");
  return report();
}

/** Lets a drained server take new chunks again. */
export async function undrainServer(store: CoordinationStore, serverId: string): Promise<void> {
  await store.delete(keys.draining(serverId));
}
