/**
 * The status document from a snapshot: a vserver's state from its placement, its running record and
 * whether its node is alive; blocked reasons in words; volume state from chunk health.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { buildStatus, type VserverStatus } from "../../../src/api/status.ts";
import type { NodeRecord, PlacementRecord, VserverRecord } from "../../../src/cluster/catalog.ts";
import { type ClusterSnapshot, emptySnapshot } from "../../../src/cluster/cluster-view.ts";
import type { VolumeHealth } from "../../../src/storage/chunk-census.ts";
import { nodeRecord } from "../../support/node-record.ts";

function node(nodeId: string): NodeRecord {
  return nodeRecord(nodeId, {
    roles: ["filer", "storage"],
    loadPerCore: 0.25,
    serviceState: nodeId === "n1" ? [{ vserverId: "up", pages: 3, liveBytes: 4096 }] : [],
  });
}

function vserver(vserverId: string, volumeId: string): VserverRecord {
  return {
    vserverId,
    name: vserverId,
    handleId: 1,
    handleKey: "k".repeat(44),
    priority: 0,
    pinned: false,
    vips: [`127.0.9.${vserverId.length}`, `127.0.9.${vserverId.length + 100}`],
    volumes: [volumeId],
    exports: ["127.0.0.0/8(rw)"],
    nfsPort: 2049,
    mountPort: 20048,
  };
}

/** A cluster of n1 (alive, master) and n2 (known, dead) with one vserver per case. */
function snapshot(): ClusterSnapshot {
  const s = emptySnapshot();
  s.nodes.set("n1", node("n1"));
  s.settings.set("n2", { operatorState: "enabled", changedAtMs: 0 });
  s.master = { record: { nodeId: "n1", sinceMs: 0 }, term: 12 };
  const place = (id: string, placement: PlacementRecord) => {
    s.vservers.set(id, { record: vserver(id, `${id}-data`), modRevision: 1 });
    s.placements.set(id, { record: placement, modRevision: 1 });
  };
  place("up", { node: "n1", generation: 3, sinceMs: 0, blocked: null, liveMove: null });
  s.running.set("up", {
    nodeId: "n1",
    generation: 3,
    endpoints: [{ address: "127.0.9.2", nfsPort: 2049, mountPort: 20048, url: "nfs://127.0.9.2/" }],
    ownerEpochs: {},
    statePages: 1,
    stateLiveBytes: 64,
    liveFrom: null,
    sinceMs: 0,
  });
  place("moving", { node: "n1", generation: 4, sinceMs: 0, blocked: null, liveMove: null });
  s.running.set("moving", {
    nodeId: "n1",
    generation: 3,
    endpoints: [],
    ownerEpochs: {},
    sinceMs: 0,
    statePages: 0,
    stateLiveBytes: 0,
    liveFrom: null,
  });
  place("pinned", {
    node: "n2",
    generation: 1,
    sinceMs: 0,
    blocked: { code: "pinned-node-dead", node: "n2" },
    liveMove: null,
  });
  place("nowhere", { node: null, generation: 0, sinceMs: 0, blocked: { code: "no-node" }, liveMove: null });
  return s;
}

function health(volumeId: string, underReplicated: number, unavailable: number): VolumeHealth {
  return {
    volumeId,
    sizeBytes: 1 << 20,
    replicationFactor: 2,
    chunks: 4,
    underReplicated,
    unavailable,
    moving: 0,
  };
}

test("a vserver runs only where it is placed, at its generation, on a live node", () => {
  const doc = buildStatus(snapshot(), [], new Map());
  const byId = new Map<string, VserverStatus>(doc.vservers.map((v) => [v.id, v]));
  assert.deepEqual(
    [...byId.values()].map((v) => [v.id, v.state, v.node, v.runningOn]),
    [
      ["moving", "starting", "n1", "n1"],
      ["nowhere", "down", null, null],
      ["pinned", "down", "n2", null],
      ["up", "running", "n1", "n1"],
    ],
  );
  assert.deepEqual(byId.get("up")?.urls, ["nfs://127.0.9.2/"]);
  assert.match(
    byId.get("pinned")?.blocked?.text ?? "",
    /pinned.*n2 is dead.*until n2 returns or you move it/,
  );
  assert.match(byId.get("nowhere")?.blocked?.text ?? "", /no node can take it/);
  assert.equal(byId.get("up")?.blocked, null);
  assert.equal("handleKey" in (byId.get("up") ?? {}), false, "the handle key stays in the cluster");
  // Memory in use: the node's fresh figure over the running record's figure from the start.
  assert.deepEqual(byId.get("up")?.serviceState, { pages: 3, bytes: 3 * 65536, liveBytes: 4096 });
  assert.deepEqual(byId.get("moving")?.serviceState, { pages: 0, bytes: 0, liveBytes: 0 });
  assert.equal(byId.get("nowhere")?.serviceState, null);
});

test("nodes: alive or known only by their settings, master, placed vservers", () => {
  const doc = buildStatus(snapshot(), [], new Map());
  assert.deepEqual(doc.master, { nodeId: "n1", term: 12 });
  assert.deepEqual(
    doc.nodes.map((n) => [n.id, n.alive, n.isMaster, n.vservers, n.loadPerCore]),
    [
      ["n1", true, true, ["moving", "up"], 0.25],
      ["n2", false, false, ["pinned"], null],
    ],
  );
});

test("volumes: state from chunk health, owner vserver and owner epoch", () => {
  const doc = buildStatus(
    snapshot(),
    [health("up-data", 0, 0), health("pinned-data", 2, 0), health("spare", 3, 1)],
    new Map([["up-data", 7]]),
  );
  assert.deepEqual(
    doc.volumes.map((v) => [v.id, v.state, v.vserver, v.ownerEpoch]),
    [
      ["up-data", "ok", "up", 7],
      ["pinned-data", "degraded", "pinned", 0],
      ["spare", "unavailable", null, 0],
    ],
  );
});

test("migrations: each vserver's live move with its progress, without the request id", () => {
  const s = snapshot();
  const record = {
    requestId: "r1",
    from: "n1",
    to: "n2",
    force: false,
    requestedAtMs: 10,
    state: "copying" as const,
    reason: null,
    rounds: 2,
    pagesSent: 5,
    bytesSent: 5 * 65536,
    suspendedMs: 0,
    updatedAtMs: 20,
  };
  s.migrations.set("up", { record, modRevision: 3 });
  const { requestId: _request, ...progress } = record;
  assert.deepEqual(buildStatus(s, [], new Map()).migrations, [{ vserver: "up", ...progress }]);
  assert.deepEqual(buildStatus(snapshot(), [], new Map()).migrations, []);
});
