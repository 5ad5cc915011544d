/**
 * When the master moves a vserver live: a drain goes live where the target can take the pages, waits
 * for a move under way, and falls back to a stop and start after a failure; a node low on pages moves
 * its largest unpinned vserver to the roomiest node that stays above its own low mark.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { MigrationRecord, NodeRecord } from "../../../src/cluster/catalog.ts";
import { type ClusterSnapshot, emptySnapshot } from "../../../src/cluster/cluster-view.ts";
import { LIVE_MOVE_WAIT_MS } from "../../../src/cluster/live-move.ts";
import {
  drainMoveKind,
  LIVE_MOVE_PICKUP_MS,
  lowOnStatePages,
  memoryPressureMoves,
  moveInFlight,
} from "../../../src/cluster/live-move-policy.ts";
import { nodeRecord } from "../../support/node-record.ts";

const NOW = 1_000_000;
const COOLDOWN = 30_000;

function node(nodeId: string, pagesFree: number, serving: Record<string, number> = {}): NodeRecord {
  return nodeRecord(nodeId, {
    moveAddress: `127.0.0.1:${7000 + nodeId.length}`,
    statePagesFree: pagesFree,
    statePagesMax: 1000,
    serviceState: Object.entries(serving).map(([vserverId, pages]) => ({ vserverId, pages, liveBytes: 1 })),
  });
}

/** Nodes n1..n3 with these free pages; vservers placed and running where `serving` says. */
function cluster(
  free: readonly number[],
  serving: Record<string, Record<string, number>>,
  pinned: readonly string[] = [],
): ClusterSnapshot {
  const s = emptySnapshot();
  free.forEach((pages, i) => {
    const id = `n${i + 1}`;
    s.nodes.set(id, node(id, pages, serving[id] ?? {}));
  });
  for (const [nodeId, vservers] of Object.entries(serving))
    for (const [vserverId, pages] of Object.entries(vservers)) {
      s.vservers.set(vserverId, {
        record: {
          vserverId,
          name: vserverId,
          handleId: 1,
          handleKey: "k".repeat(44),
          priority: 0,
          pinned: pinned.includes(vserverId),
          vips: ["127.0.9.1"],
          volumes: [`${vserverId}-data`],
          exports: ["127.0.0.0/8(rw)"],
          nfsPort: 2049,
          mountPort: 20048,
        },
        modRevision: 1,
      });
      s.placements.set(vserverId, {
        record: { node: nodeId, generation: 1, sinceMs: 0, blocked: null, liveMove: null },
        modRevision: 2,
      });
      s.running.set(vserverId, {
        nodeId,
        generation: 1,
        endpoints: [],
        ownerEpochs: {},
        sinceMs: 0,
        statePages: pages,
        stateLiveBytes: 1,
        liveFrom: null,
      });
    }
  return s;
}

function migration(state: MigrationRecord["state"], updatedAtMs: number): MigrationRecord {
  return {
    requestId: "r1",
    from: "n1",
    to: "n2",
    force: true,
    requestedAtMs: updatedAtMs,
    state,
    reason: state === "failed" ? "pre-copying to node n2: reset" : null,
    rounds: 0,
    pagesSent: 0,
    bytesSent: 0,
    suspendedMs: 0,
    updatedAtMs,
  };
}

test("live-move policy: a drain goes live when the target has room, and cold when it has not or takes no moves", () => {
  const s = cluster([500, 500], { n1: { a: 40 } });
  assert.equal(drainMoveKind(s, "a", "n2", NOW, COOLDOWN), "live");
  s.nodes.set("n2", node("n2", 30));
  assert.equal(drainMoveKind(s, "a", "n2", NOW, COOLDOWN), "cold", "40 pages and headroom do not fit in 30");
  s.nodes.set("n2", { ...node("n2", 500), moveAddress: "" });
  assert.equal(drainMoveKind(s, "a", "n2", NOW, COOLDOWN), "cold", "a node without a move address");
  const pinned = cluster([500, 500], { n1: { a: 40 } }, ["a"]);
  assert.equal(drainMoveKind(pinned, "a", "n2", NOW, COOLDOWN), "live", "a drain moves pinned ones too");
});

test("live-move policy: a drain waits for a move under way, and goes cold after a failure or an untaken request", () => {
  const s = cluster([500, 500], { n1: { a: 40 } });
  const withMove = (record: MigrationRecord) => s.migrations.set("a", { record, modRevision: 5 });
  withMove(migration("copying", NOW - 1000));
  assert.equal(drainMoveKind(s, "a", "n2", NOW, COOLDOWN), "wait");
  withMove(migration("failed", NOW - 1000));
  assert.equal(drainMoveKind(s, "a", "n2", NOW, COOLDOWN), "cold");
  withMove(migration("failed", NOW - COOLDOWN - 1));
  assert.equal(drainMoveKind(s, "a", "n2", NOW, COOLDOWN), "live", "an old failure is tried again");
  withMove(migration("requested", NOW - LIVE_MOVE_PICKUP_MS + 1));
  assert.equal(drainMoveKind(s, "a", "n2", NOW, COOLDOWN), "wait");
  withMove(migration("requested", NOW - LIVE_MOVE_PICKUP_MS));
  assert.equal(drainMoveKind(s, "a", "n2", NOW, COOLDOWN), "cold", "nobody took the request up");
  withMove(migration("done", NOW - 1000));
  assert.equal(drainMoveKind(s, "a", "n2", NOW, COOLDOWN), "live");
});

test("live-move policy: a move record is in flight only while active and written lately", () => {
  assert.equal(moveInFlight(undefined, NOW), false);
  assert.equal(moveInFlight(migration("suspended", NOW - LIVE_MOVE_WAIT_MS + 1), NOW), true);
  assert.equal(moveInFlight(migration("suspended", NOW - LIVE_MOVE_WAIT_MS), NOW), false);
  assert.equal(moveInFlight(migration("done", NOW), NOW), false);
  assert.equal(moveInFlight(migration("failed", NOW), NOW), false);
});

test("live-move policy: the low mark is a tenth of the pool; a node without a pool is never low", () => {
  assert.equal(lowOnStatePages(99, 1000), true);
  assert.equal(lowOnStatePages(100, 1000), false);
  assert.equal(lowOnStatePages(0, 0), false);
});

test("live-move policy: a node low on pages moves its largest unpinned vserver to the roomiest node", () => {
  const s = cluster([50, 400, 600], { n1: { small: 100, big: 500, huge: 300 }, n2: { other: 10 } }, ["big"]);
  assert.deepEqual(memoryPressureMoves(s, NOW, COOLDOWN), [
    { vserverId: "huge", from: "n1", to: "n3", force: false, cause: "memory" },
  ]);
});

test("live-move policy: no move that leaves the target low, none in a cooldown, none while one runs", () => {
  const tight = cluster([50, 350], { n1: { a: 300 } });
  assert.deepEqual(memoryPressureMoves(tight, NOW, COOLDOWN), [], "n2 would keep 350-300-75 < 100 pages");
  const s = cluster([50, 900], { n1: { a: 300 } });
  assert.equal(memoryPressureMoves(s, NOW, COOLDOWN).length, 1);
  s.placements.set("a", {
    record: { node: "n1", generation: 2, sinceMs: NOW - 1000, blocked: null, liveMove: null },
    modRevision: 3,
  });
  assert.deepEqual(memoryPressureMoves(s, NOW, COOLDOWN), [], "moved a second ago");
  const busy = cluster([50, 900], { n1: { a: 300, b: 20 } });
  busy.migrations.set("b", { record: migration("copying", NOW - 10), modRevision: 4 });
  assert.deepEqual(memoryPressureMoves(busy, NOW, COOLDOWN), [], "n1 is already moving b");
  const failed = cluster([50, 900], { n1: { a: 300 } });
  failed.migrations.set("a", { record: migration("failed", NOW - 10), modRevision: 4 });
  assert.deepEqual(memoryPressureMoves(failed, NOW, COOLDOWN), [], "a failed a moment ago");
});
