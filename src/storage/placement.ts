/**
 * Chunk placement: which storage servers hold which chunks. Pure: capacities in, choices out.
 * Volumes are thick: every chunk placed counts fully against its servers' capacity, so a volume that
 * was created can always be written to the end.
 */

export interface ServerSpace {
  readonly serverId: string;
  readonly capacityBytes: number;
  /** Bytes of chunks already placed on it (all volumes, all replica states). */
  readonly allocatedBytes: number;
}

export class PlacementError extends Error {
  override name = "PlacementError";
}

const freeOf = (space: ServerSpace): number => space.capacityBytes - space.allocatedBytes;

/** Orders candidates by most free space first; ties by id, so placements are deterministic. */
function byFreeSpace(a: { serverId: string; free: number }, b: { serverId: string; free: number }): number {
  return b.free - a.free || (a.serverId < b.serverId ? -1 : a.serverId > b.serverId ? 1 : 0);
}

/**
 * Places `chunkCount` chunks of `chunkBytes`, each on `replicationFactor` distinct servers, always
 * on the servers with the most free space at that point (which spreads a volume evenly over equal
 * servers). Throws PlacementError, naming what is missing, when it cannot.
 */
export function placeChunks(
  servers: readonly ServerSpace[],
  chunkCount: number,
  chunkBytes: number,
  replicationFactor: number,
): string[][] {
  if (servers.length < replicationFactor) {
    throw new PlacementError(
      `replication factor ${replicationFactor} needs ${replicationFactor} storage servers; ${servers.length} alive`,
    );
  }
  const needed = chunkCount * chunkBytes * replicationFactor;
  const available = servers.reduce((sum, s) => sum + Math.max(0, freeOf(s)), 0);
  const pool = servers.map((s) => ({ serverId: s.serverId, free: freeOf(s) }));
  const placement: string[][] = [];
  for (let chunk = 0; chunk < chunkCount; chunk++) {
    pool.sort(byFreeSpace);
    const chosen = pool.slice(0, replicationFactor);
    if (chosen.some((s) => s.free < chunkBytes)) {
      throw new PlacementError(
        `not enough free space: ${needed} bytes needed across ${replicationFactor} servers, ` +
          `${available} free in all`,
      );
    }
    for (const server of chosen) server.free -= chunkBytes;
    placement.push(chosen.map((s) => s.serverId));
  }
  return placement;
}

/**
 * The server to receive a copy of a chunk: the one with the most free space that is not excluded
 * (the chunk's current replicas, dead or draining servers). Undefined if none has room.
 */
export function chooseTarget(
  servers: readonly ServerSpace[],
  excluded: ReadonlySet<string>,
  chunkBytes: number,
): string | undefined {
  const candidates = servers
    .filter((s) => !excluded.has(s.serverId) && freeOf(s) >= chunkBytes)
    .map((s) => ({ serverId: s.serverId, free: freeOf(s) }))
    .sort(byFreeSpace);
  return candidates[0]?.serverId;
}
