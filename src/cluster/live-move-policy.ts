/**
 * When the master moves a vserver live instead of by stop and start. Pure: the cluster's snapshot and
 * the time in, decisions out; the master writes them (master.ts).
 *
 * - A drain of a live node moves each running vserver live, if the target takes live moves and has
 *   room for its pages. While that move runs the drain waits for it; if it failed in the last
 *   cooldown, or never started, the drain falls back to the planned stop and start.
 * - A node low on service-state pages moves its largest unpinned vserver live to the node with the
 *   most free pages that can take it, one move per node at a time and at most once per cooldown per
 *   vserver; a move that would leave the target low too is not made.
 */
import type { MigrationRecord } from "./catalog.ts";
import type { ClusterSnapshot } from "./cluster-view.ts";
import { checkLiveMove, headroomPages, LIVE_MOVE_WAIT_MS } from "./live-move.ts";

/** A node with fewer free pages than this share of its pool is low on service-state memory. */
export const STATE_PAGES_LOW_FRACTION = 0.1;

export interface LiveMoveWish {
  readonly vserverId: string;
  readonly from: string;
  readonly to: string;
  /** A drain moves pinned vservers too (the operator asked for the node to be emptied). */
  readonly force: boolean;
  readonly cause: "drain" | "memory";
}

/** A request nobody took up in this time is abandoned (its node takes no live moves, or died). */
export const LIVE_MOVE_PICKUP_MS = 10_000;

/** How long the record may go unwritten in its state before the move counts as abandoned. */
function activeForMs(record: MigrationRecord): number | undefined {
  if (record.state === "requested") return LIVE_MOVE_PICKUP_MS;
  if (record.state === "copying" || record.state === "suspended") return LIVE_MOVE_WAIT_MS;
  return undefined;
}

/** A move is under way while its record says so and its node has written it lately. */
export function moveInFlight(record: MigrationRecord | undefined, nowMs: number): boolean {
  if (record === undefined) return false;
  const forMs = activeForMs(record);
  return forMs !== undefined && nowMs - record.updatedAtMs < forMs;
}

/** Whether it failed, or was abandoned, within the last `withinMs`. */
function failedLately(record: MigrationRecord | undefined, nowMs: number, withinMs: number): boolean {
  if (record === undefined) return false;
  if (record.state === "failed") return nowMs - record.updatedAtMs < withinMs;
  const forMs = activeForMs(record);
  if (forMs === undefined) return false;
  const abandonedAtMs = record.updatedAtMs + forMs;
  return nowMs >= abandonedAtMs && nowMs - abandonedAtMs < withinMs;
}

/**
 * How a drain's planned move of `vserverId` to `to` is made: live, by waiting for the live move
 * already under way, or cold (the placement change itself).
 */
export function drainMoveKind(
  snapshot: ClusterSnapshot,
  vserverId: string,
  to: string,
  nowMs: number,
  cooldownMs: number,
): "live" | "wait" | "cold" {
  const record = snapshot.migrations.get(vserverId)?.record;
  if (moveInFlight(record, nowMs)) return "wait";
  if (failedLately(record, nowMs, cooldownMs)) return "cold";
  try {
    checkLiveMove(snapshot, vserverId, to, true);
  } catch {
    return "cold";
  }
  return "live";
}

export function lowOnStatePages(pagesFree: number, pagesMax: number): boolean {
  return pagesMax > 0 && pagesFree < pagesMax * STATE_PAGES_LOW_FRACTION;
}

/** The live moves that relieve nodes low on service-state pages, at most one per node. */
export function memoryPressureMoves(
  snapshot: ClusterSnapshot,
  nowMs: number,
  cooldownMs: number,
): LiveMoveWish[] {
  const wishes: LiveMoveWish[] = [];
  const busy = new Set<string>();
  for (const [id, { record }] of snapshot.migrations)
    if (moveInFlight(record, nowMs)) {
      busy.add(record.from);
      busy.add(record.to);
      busy.add(`vserver:${id}`);
    }
  for (const [nodeId, node] of [...snapshot.nodes].sort(([a], [b]) => a.localeCompare(b))) {
    if (busy.has(nodeId) || !lowOnStatePages(node.statePagesFree, node.statePagesMax)) continue;
    const candidates = [...node.serviceState]
      .filter((s) => movable(snapshot, s.vserverId, nodeId, nowMs, cooldownMs))
      .sort((a, b) => b.pages - a.pages || a.vserverId.localeCompare(b.vserverId));
    for (const { vserverId, pages } of candidates) {
      const to = roomiest(snapshot, vserverId, pages, busy);
      if (to === undefined) continue;
      wishes.push({ vserverId, from: nodeId, to, force: false, cause: "memory" });
      busy.add(nodeId);
      busy.add(to);
      break;
    }
  }
  return wishes;
}

function movable(
  snapshot: ClusterSnapshot,
  vserverId: string,
  nodeId: string,
  nowMs: number,
  cooldownMs: number,
): boolean {
  const vserver = snapshot.vservers.get(vserverId)?.record;
  const placement = snapshot.placements.get(vserverId)?.record;
  if (vserver === undefined || vserver.pinned || placement?.node !== nodeId) return false;
  if (snapshot.running.get(vserverId)?.nodeId !== nodeId) return false;
  if (nowMs < placement.sinceMs + cooldownMs) return false;
  return !failedLately(snapshot.migrations.get(vserverId)?.record, nowMs, cooldownMs);
}

/** The node with the most free pages that takes the vserver and stays above its low mark after. */
function roomiest(
  snapshot: ClusterSnapshot,
  vserverId: string,
  pages: number,
  busy: ReadonlySet<string>,
): string | undefined {
  let best: { id: string; free: number } | undefined;
  for (const [id, node] of snapshot.nodes) {
    if (busy.has(id)) continue;
    const after = node.statePagesFree - pages - headroomPages(pages);
    if (lowOnStatePages(after, node.statePagesMax)) continue;
    try {
      checkLiveMove(snapshot, vserverId, id, false);
    } catch {
      continue;
    }
    if (
      best === undefined ||
      node.statePagesFree > best.free ||
      (node.statePagesFree === best.free && id < best.id)
    )
      best = { id, free: node.statePagesFree };
  }
  return best?.id;
}
