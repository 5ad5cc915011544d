/**
 * Live moves of a vserver (`vserver move --live`): the operator's request is a migration record;
 * the node serving the vserver carries it out (see NodeAgent) and records how it went.
 *
 * The source's steps: check the target (alive, enabled filer, room for the pages, not pinned unless
 * forced); open the authenticated move channel and offer the state; pre-copy its pages while still
 * serving, in rounds, until few pages change between rounds; suspend (hold new calls, finish the
 * running ones, commit every volume); compact the state; send the pages changed since and the
 * manifest, which the target re-bases and checks; then cut over: place the vserver on the target
 * (compare-and-swap on the placement it ran under), hand off (held calls dropped, connections cut,
 * volumes unmounted) and release the holder key, which is what the target's start waits for. Any
 * failure before the cutover rolls back: the target drops what it got, the held calls go on here.
 */
import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import type { MoveSender } from "../service/move-channel.ts";
import type { ServiceState } from "../service/service-state.ts";
import type { CoordinationStore } from "../store/index.ts";
import {
  clusterKeys,
  decodeRecord,
  encodeRecord,
  type MigrationRecord,
  migrationRecordSchema,
} from "./catalog.ts";
import { type ClusterSnapshot, readClusterSnapshot } from "./cluster-view.ts";
import { AdminError, checkMoveTarget } from "./desired-state.ts";

/** Pre-copy rounds before the suspend, at most. */
export const PRECOPY_ROUNDS_MAX = 5;
/** A round that leaves at most this many changed pages ends the pre-copy. */
export const PRECOPY_DIRTY_PAGES_SMALL = 4;
/** Pages the target keeps free beyond what it takes (its other vservers grow too). */
export function headroomPages(pages: number): number {
  return Math.max(16, Math.ceil(pages / 4));
}
/** How long the suspend waits for running calls before the move gives up and resumes. */
export const SUSPEND_DRAIN_MS = 5_000;
/** How long an operator's request waits for the move to end. */
export const LIVE_MOVE_WAIT_MS = 120_000;

/**
 * Why the vserver cannot be moved live to `to` now (AdminError), beyond an ordinary move's reasons:
 * it must be running, not pinned unless forced, and the target must take moves and have the pages.
 */
export function checkLiveMove(
  snapshot: ClusterSnapshot,
  vserverId: string,
  to: string,
  force: boolean,
): { from: string } {
  checkMoveTarget(snapshot, vserverId, to);
  const vserver = snapshot.vservers.get(vserverId)?.record;
  const running = snapshot.running.get(vserverId);
  if (vserver === undefined || running === undefined || !snapshot.nodes.has(running.nodeId))
    throw new AdminError(
      "CONFLICT",
      `vserver ${vserverId} is not running; a live move needs a running vserver`,
    );
  if (vserver.pinned && !force)
    throw new AdminError(
      "CONFLICT",
      `vserver ${vserverId} is pinned (the planner never moves it, and it stays down if its node dies); add --force to move it anyway`,
    );
  const target = snapshot.nodes.get(to);
  if (target === undefined || target.moveAddress === "")
    throw new AdminError("CONFLICT", `node ${to} does not take live moves (it publishes no move address)`);
  // The source's health record is fresher than the running record, written once at the start.
  const pages =
    snapshot.nodes.get(running.nodeId)?.serviceState.find((s) => s.vserverId === vserverId)?.pages ??
    running.statePages;
  const need = pages + headroomPages(pages);
  if (target.statePagesFree < need)
    throw new AdminError(
      "CONFLICT",
      `node ${to} has ${target.statePagesFree} free service-state pages; vserver ${vserverId} needs ${pages} and ${need - pages} of headroom`,
    );
  const slots = [...snapshot.placements.values()].filter((p) => p.record.node === to).length;
  if (slots >= target.vserversMax)
    throw new AdminError("CONFLICT", `node ${to} already runs its ${target.vserversMax} vservers`);
  return { from: running.nodeId };
}

/** A fresh request for a live move, with a new request id. */
export function newMigration(from: string, to: string, force: boolean, nowMs: number): MigrationRecord {
  return {
    requestId: randomBytes(8).toString("hex"),
    from,
    to,
    force,
    requestedAtMs: nowMs,
    state: "requested",
    reason: null,
    rounds: 0,
    pagesSent: 0,
    bytesSent: 0,
    suspendedMs: 0,
    updatedAtMs: nowMs,
  };
}

/** Asks for a live move and waits for it to end; the record says how it went. */
export async function requestLiveMove(
  store: CoordinationStore,
  vserverId: string,
  to: string,
  options: { force: boolean; waitMs?: number },
): Promise<MigrationRecord> {
  const snapshot = await readClusterSnapshot(store);
  const { from } = checkLiveMove(snapshot, vserverId, to, options.force);
  const key = clusterKeys.migration(vserverId);
  const current = snapshot.migrations.get(vserverId)?.record;
  if (current !== undefined && (current.state === "copying" || current.state === "suspended"))
    throw new AdminError("CONFLICT", `vserver ${vserverId} is already being moved to ${current.to}`);
  const record = newMigration(from, to, options.force, Date.now());
  const { requestId } = record;
  await store.put(key, encodeRecord(migrationRecordSchema, record));
  const deadline = performance.now() + (options.waitMs ?? LIVE_MOVE_WAIT_MS);
  while (performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 25));
    const now = (await readClusterSnapshot(store)).migrations.get(vserverId)?.record;
    if (now === undefined || now.requestId !== requestId)
      throw new AdminError("CONFLICT", `the live move of ${vserverId} was replaced by another request`);
    if (now.state === "done" || now.state === "failed") return now;
  }
  throw new AdminError(
    "UNAVAILABLE",
    `the live move of ${vserverId} did not end within the wait; see status`,
  );
}

/** Writes the move's progress, if the record is still this request's. */
export async function updateMigration(
  store: CoordinationStore,
  vserverId: string,
  requestId: string,
  patch: Partial<Omit<MigrationRecord, "requestId">>,
): Promise<void> {
  const key = clusterKeys.migration(vserverId);
  const kv = await store.get(key);
  if (kv === undefined) return;
  const current = decodeRecord(migrationRecordSchema, key, kv.value);
  if (current.requestId !== requestId) return;
  const next: MigrationRecord = { ...current, ...patch, updatedAtMs: Date.now() };
  await store.txn(
    [{ key, target: "mod", equals: kv.modRevision }],
    [{ op: "put", key, value: encodeRecord(migrationRecordSchema, next) }],
  );
}

export interface PrecopyResult {
  readonly rounds: number;
  /** Pages taken as changed in the last round but not yet sent: the final copy sends them. */
  readonly pending: readonly number[];
}

/** Sends the state's pages while the vserver serves, round after round, until few change. */
export async function precopy(
  state: ServiceState,
  sender: MoveSender,
  log: Logger,
  bytesPerSec = 0,
): Promise<PrecopyResult> {
  let dirty = state.arena.takeDirty();
  let rounds = 0;
  const startedMs = performance.now();
  let sent = 0;
  while (rounds < PRECOPY_ROUNDS_MAX) {
    for (const page of dirty) {
      const image = state.arena.seal(page);
      if (image === undefined) continue;
      await sender.page(page, image);
      sent += image.length;
      if (bytesPerSec > 0) {
        const aheadMs = (sent / bytesPerSec) * 1000 - (performance.now() - startedMs);
        if (aheadMs > 0) await new Promise((resolve) => setTimeout(resolve, aheadMs));
      }
    }
    rounds++;
    dirty = state.arena.takeDirty();
    log.debug({ round: rounds, changed: dirty.length }, "pre-copy round");
    if (dirty.length <= PRECOPY_DIRTY_PAGES_SMALL) break;
  }
  return { rounds, pending: dirty };
}

/** After the suspend: compaction, then every page changed since the pre-copy, then the manifest. */
export async function finalCopy(
  state: ServiceState,
  sender: MoveSender,
  pending: readonly number[],
): Promise<void> {
  state.compact();
  const changed = new Set([...pending, ...state.arena.takeDirty()]);
  for (const page of changed) {
    const image = state.arena.seal(page);
    if (image !== undefined) await sender.page(page, image);
  }
  const manifest = state.arena.manifest();
  await sender.final({ ...manifest, pages: [...manifest.pages] });
}
