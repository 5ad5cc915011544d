/**
 * The storage balancer's plan: servers' loads and the chunks they hold in, chunk moves out. Pure (no
 * I/O, no clock), so the master runs it on every measure and the simulation thousands of times.
 *
 * - Load is what the chunks bring: a chunk's heat counts on every server holding a replica (writes
 *   go to all of them), plus whatever of the server's load no chunk explains (`baseLoad`).
 * - Dead-band: nothing moves while the hottest server is within `startRatio` of the mean; once it is
 *   past it, moves are planned until the hottest is within `stopRatio`, which is lower, so a group
 *   that hovers around the threshold does not flap.
 * - A move takes a chunk from the hottest server to the coolest that does not already hold a
 *   replica and has the room, choosing the chunk whose heat comes closest to half the gap (the move
 *   must leave the target cooler than the source was, or it only moves the hot spot).
 * - A server fuller than `fullShare` of its capacity sheds chunks to the emptiest server below it.
 * - At most `inFlightMax` moves at once, counting those running; none while any chunk is degraded
 *   (repair comes first), none of a chunk already moving, none to or from a server not `usable`.
 */
import { assert } from "../util/assert.ts";

export interface BalanceServer {
  readonly serverId: string;
  /** Alive and not draining: it may give and receive chunks. */
  readonly usable: boolean;
  /** Load not explained by the chunks listed (other traffic, chunks not in the top-N). */
  readonly baseLoad: number;
  readonly capacityBytes: number;
  readonly allocatedBytes: number;
}

export interface BalanceChunk {
  readonly volumeId: string;
  readonly chunkIndex: number;
  readonly bytes: number;
  /** Servers holding a replica. */
  readonly replicas: readonly string[];
  /** The load it puts on each server holding it (smoothed by the caller). */
  readonly heat: number;
  /** A copy of it is under way. */
  readonly moving: boolean;
}

export interface BalancePolicy {
  readonly startRatio: number;
  readonly stopRatio: number;
  readonly inFlightMax: number;
  readonly fullShare: number;
}

export const BALANCE_POLICY_DEFAULT: BalancePolicy = Object.freeze({
  startRatio: 1.2,
  stopRatio: 1.1,
  inFlightMax: 4,
  fullShare: 0.9,
});

export interface BalanceInput {
  readonly servers: readonly BalanceServer[];
  readonly chunks: readonly BalanceChunk[];
  /** Moves running now (of any cause). */
  readonly inFlight: number;
  /** Some chunk has fewer healthy replicas than it should. */
  readonly degraded: boolean;
}

export interface BalanceMove {
  readonly volumeId: string;
  readonly chunkIndex: number;
  readonly from: string;
  readonly to: string;
  readonly why: "hot" | "full";
  /** The estimated loads of source and target before the move. */
  readonly fromLoad: number;
  readonly toLoad: number;
}

export interface BalancePlan {
  readonly moves: readonly BalanceMove[];
  /** Why nothing (more) moves, in words, for `storage balance --plan`. */
  readonly idle: string | null;
  /** Max over mean load before and after the planned moves (estimated). */
  readonly ratioBefore: number;
  readonly ratioAfter: number;
}

interface Tally {
  load: number;
  allocated: number;
  readonly server: BalanceServer;
}

/** Max over mean of the usable servers' loads (1 when all are idle or there are none). */
export function loadRatio(loads: readonly number[]): number {
  if (loads.length === 0) return 1;
  const mean = loads.reduce((a, b) => a + b, 0) / loads.length;
  return mean > 0 ? Math.max(...loads) / mean : 1;
}

export function serverLoads(input: Pick<BalanceInput, "servers" | "chunks">): Map<string, number> {
  const loads = new Map(input.servers.map((s) => [s.serverId, s.baseLoad]));
  for (const chunk of input.chunks)
    for (const id of chunk.replicas) if (loads.has(id)) loads.set(id, loads.get(id)! + chunk.heat);
  return loads;
}

export function planBalance(
  input: BalanceInput,
  policy: BalancePolicy = BALANCE_POLICY_DEFAULT,
): BalancePlan {
  assert(policy.stopRatio >= 1 && policy.stopRatio <= policy.startRatio, "1 <= stop ratio <= start ratio");
  const loads = serverLoads(input);
  const tallies = new Map<string, Tally>();
  for (const server of input.servers)
    if (server.usable)
      tallies.set(server.serverId, {
        load: loads.get(server.serverId)!,
        allocated: server.allocatedBytes,
        server,
      });
  const ratio = (): number => loadRatio([...tallies.values()].map((t) => t.load));
  const ratioBefore = ratio();
  const done = (idle: string | null, moves: BalanceMove[] = []): BalancePlan => ({
    moves,
    idle,
    ratioBefore,
    ratioAfter: ratio(),
  });
  if (input.degraded) return done("paused: some chunk is degraded; repair comes first");
  if (tallies.size < 2) return done("fewer than two usable servers");
  const budget = policy.inFlightMax - input.inFlight;
  if (budget <= 0) return done(`${input.inFlight} moves in flight (at most ${policy.inFlightMax})`);

  // Where each chunk is, as the plan goes: a planned move changes a chunk's replicas.
  const placed = input.chunks.map((chunk) => ({
    chunk,
    replicas: [...chunk.replicas],
    planned: chunk.moving,
  }));
  const moves: BalanceMove[] = [];
  const move = (i: number, from: Tally, to: Tally, why: BalanceMove["why"]): void => {
    const entry = placed[i]!;
    assert(!entry.replicas.includes(to.server.serverId), "a chunk never gets two replicas on one server");
    moves.push({
      volumeId: entry.chunk.volumeId,
      chunkIndex: entry.chunk.chunkIndex,
      from: from.server.serverId,
      to: to.server.serverId,
      why,
      fromLoad: from.load,
      toLoad: to.load,
    });
    entry.replicas[entry.replicas.indexOf(from.server.serverId)] = to.server.serverId;
    entry.planned = true;
    from.load -= entry.chunk.heat;
    to.load += entry.chunk.heat;
    from.allocated -= entry.chunk.bytes;
    to.allocated += entry.chunk.bytes;
  };
  const fits = (t: Tally, bytes: number): boolean =>
    t.allocated + bytes <= t.server.capacityBytes * policy.fullShare;
  const movableFrom = (from: Tally) =>
    placed
      .map((entry, i) => ({ entry, i }))
      .filter(({ entry }) => !entry.planned && entry.replicas.includes(from.server.serverId));

  // Full servers first: a server past its fill mark can fail writes, which is worse than heat.
  for (const from of [...tallies.values()].sort((a, b) => fillOf(b) - fillOf(a))) {
    while (moves.length < budget && from.allocated > from.server.capacityBytes * policy.fullShare) {
      const candidate = movableFrom(from)
        .map(({ entry, i }) => ({ i, to: emptiest(tallies, entry.replicas, entry.chunk.bytes, fits) }))
        .find((c) => c.to !== undefined);
      if (candidate?.to === undefined) break;
      move(candidate.i, from, candidate.to, "full");
    }
  }

  if (ratio() <= policy.startRatio && moves.length === 0)
    return done(`within the dead-band: max/mean ${ratioBefore.toFixed(2)} <= ${policy.startRatio}`);
  while (moves.length < budget && ratio() > policy.stopRatio) {
    const byLoad = [...tallies.values()].sort((a, b) => b.load - a.load || idOrder(a, b));
    const hottest = byLoad[0]!;
    let chosen: { i: number; to: Tally } | undefined;
    for (const to of byLoad.slice(1).reverse()) {
      const gap = hottest.load - to.load;
      if (gap <= 0) break;
      let best: { i: number; miss: number } | undefined;
      for (const { entry, i } of movableFrom(hottest)) {
        const heat = entry.chunk.heat;
        if (heat <= 0 || heat >= gap || entry.replicas.includes(to.server.serverId)) continue;
        if (!fits(to, entry.chunk.bytes)) continue;
        const miss = Math.abs(gap / 2 - heat);
        if (best === undefined || miss < best.miss) best = { i, miss };
      }
      if (best !== undefined) {
        chosen = { i: best.i, to };
        break;
      }
    }
    if (chosen === undefined) break;
    move(chosen.i, hottest, chosen.to, "hot");
  }
  const idle =
    moves.length >= budget
      ? `the in-flight bound (${policy.inFlightMax}) is reached; more moves follow`
      : ratio() > policy.stopRatio
        ? "no chunk move would lower the hottest server's load further"
        : null;
  return done(idle, moves);
}

const fillOf = (t: Tally): number => (t.server.capacityBytes > 0 ? t.allocated / t.server.capacityBytes : 1);
const idOrder = (a: Tally, b: Tally): number =>
  a.server.serverId < b.server.serverId ? -1 : a.server.serverId > b.server.serverId ? 1 : 0;

function emptiest(
  tallies: ReadonlyMap<string, Tally>,
  holding: readonly string[],
  bytes: number,
  fits: (t: Tally, bytes: number) => boolean,
): Tally | undefined {
  return [...tallies.values()]
    .filter((t) => !holding.includes(t.server.serverId) && fits(t, bytes))
    .sort((a, b) => fillOf(a) - fillOf(b) || idOrder(a, b))[0];
}
