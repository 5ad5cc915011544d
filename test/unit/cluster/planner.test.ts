import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { makeNode as node, makeVserver as vserver } from "../../../sim/build.ts";
import type { ClusterState, PlanAction, PlannerPolicy } from "../../../src/cluster/model.ts";
import { applyPlan, ClusterStateError, PLANNER_POLICY_DEFAULT, plan } from "../../../src/cluster/planner.ts";
import { AssertionFailure } from "../../../src/util/assert.ts";

const NOW = 1_000_000;
const POLICY: PlannerPolicy = { nodeSettleMs: 30_000, moveCooldownMs: 60_000 };

function cluster(nodes: ClusterState["nodes"], vservers: ClusterState["vservers"]): ClusterState {
  return { nodes, vservers };
}

/** The node each vserver is on after planning and applying, by vserver id. */
function placements(state: ClusterState, nowMs = NOW): Record<string, string | null> {
  const after = applyPlan(state, plan(state, nowMs, POLICY), nowMs);
  return Object.fromEntries(after.vservers.map((v) => [v.id, v.placement.node]));
}

function blockedOf(state: ClusterState, id: string, nowMs = NOW) {
  return applyPlan(state, plan(state, nowMs, POLICY), nowMs).vservers.find((v) => v.id === id)?.blocked;
}

const placementActions = (actions: readonly PlanAction[]) => actions.filter((a) => a.kind === "placement");

describe("placing new vservers", () => {
  test("goes to the node with the smallest share of its capacity in use", () => {
    const state = cluster(
      [node("a", { vserversMax: 4 }), node("b", { vserversMax: 10 })],
      [vserver("x", "a"), vserver("y", "b"), vserver("z", "b"), vserver("new", null)],
    );
    // a: 2/4 after taking it; b: 3/10.
    assert.equal(placements(state).new, "b");
  });

  test("measured load, then free memory, break ties of equal share", () => {
    const load = (loadPerCore: number, memoryFreeBytes: number) => ({ loadPerCore, memoryFreeBytes });
    const byLoad = cluster(
      [node("a", { load: load(0.9, 1) }), node("b", { load: load(0.2, 1) })],
      [vserver("v", null)],
    );
    assert.equal(placements(byLoad).v, "b");
    const byMemory = cluster(
      [node("a", { load: load(0.5, 9) }), node("b", { load: load(0.5, 1) })],
      [vserver("v", null)],
    );
    assert.equal(placements(byMemory).v, "a");
  });

  test("several new vservers at once are spread as each placement counts", () => {
    const state = cluster(
      [node("a"), node("b"), node("c")],
      ["v1", "v2", "v3", "v4", "v5", "v6"].map((id) => vserver(id, null)),
    );
    const counts = new Map<string | null, number>();
    for (const to of Object.values(placements(state))) counts.set(to, (counts.get(to) ?? 0) + 1);
    assert.deepEqual(Object.fromEntries(counts), { a: 2, b: 2, c: 2 });
  });

  test("only live, enabled filer nodes receive vservers", () => {
    const state = cluster(
      [
        node("dead", { alive: false, hasDied: true }),
        node("disabled", { operatorState: "disabled" }),
        node("draining", { operatorState: "draining" }),
        node("storage-only", { roles: ["storage"] }),
        node("full", { vserversMax: 0 }),
        node("ok", { vserversMax: 1, load: { loadPerCore: 3, memoryFreeBytes: 0 } }),
      ],
      [vserver("v", null)],
    );
    assert.equal(placements(state).v, "ok");
  });

  test("with no slot anywhere a new vserver waits unplaced, blocked no-capacity", () => {
    const state = cluster([node("a", { vserversMax: 1 })], [vserver("x", "a"), vserver("v", null)]);
    assert.equal(placements(state).v, null);
    assert.deepEqual(blockedOf(state, "v"), { code: "no-capacity" });
  });

  test("with no node that may take it a new vserver waits unplaced, blocked no-node", () => {
    const state = cluster([node("a", { alive: false, hasDied: true })], [vserver("v", null)]);
    assert.deepEqual(blockedOf(state, "v"), { code: "no-node" });
  });
});

describe("failover", () => {
  test("a dead node's vservers move to live nodes, each placement generation raised by one", () => {
    const state = cluster(
      [node("dead", { alive: false, hasDied: true }), node("a"), node("b")],
      [
        vserver("v1", "dead", { placement: { node: "dead", generation: 7, sinceMs: 0 } }),
        vserver("v2", "dead"),
      ],
    );
    const actions = placementActions(plan(state, NOW, POLICY));
    assert.deepEqual(
      actions.map((a) => [a.vserverId, a.from, a.generation, a.cause]),
      [
        ["v1", "dead", 8, "failover"],
        ["v2", "dead", 2, "failover"],
      ],
    );
  });

  test("highest priority first when slots are short", () => {
    const state = cluster(
      [node("dead", { alive: false, hasDied: true }), node("a", { vserversMax: 2 })],
      [
        vserver("low", "dead", { priority: 1 }),
        vserver("high", "dead", { priority: 9 }),
        vserver("mid", "dead", { priority: 5 }),
      ],
    );
    assert.deepEqual(placements(state), { low: null, high: "a", mid: "a" });
    assert.deepEqual(blockedOf(state, "low"), { code: "no-capacity" });
  });

  test("one node's vservers are spread over several nodes, not piled on the least loaded", () => {
    const state = cluster(
      [
        node("dead", { alive: false, hasDied: true }),
        node("idle", { vserversMax: 100 }),
        node("busy", { vserversMax: 100 }),
      ],
      [
        ...Array.from({ length: 30 }, (_, i) => vserver(`busy${i}`, "busy")),
        ...Array.from({ length: 4 }, (_, i) => vserver(`d${i}`, "dead")),
      ],
    );
    const moved = Object.entries(placements(state)).filter(([id]) => id.startsWith("d"));
    assert.deepEqual(moved.map(([, to]) => to).sort(), ["busy", "busy", "idle", "idle"]);
  });

  test("a dead node's vserver with nowhere to go leaves the node and waits, blocked no-capacity", () => {
    const state = cluster([node("dead", { alive: false, hasDied: true })], [vserver("v", "dead")]);
    const actions = plan(state, NOW, POLICY);
    assert.deepEqual(actions[0], {
      kind: "placement",
      vserverId: "v",
      from: "dead",
      to: null,
      generation: 2,
      cause: "failover",
    });
    assert.deepEqual(blockedOf(state, "v"), { code: "no-node" });
  });

  test("a waiting vserver is placed once a slot opens", () => {
    const waiting = vserver("v", null, {
      placement: { node: null, generation: 2, sinceMs: 0 },
      blocked: { code: "no-capacity" },
    });
    const state = cluster([node("a")], [waiting]);
    const actions = plan(state, NOW, POLICY);
    assert.deepEqual(actions, [
      { kind: "placement", vserverId: "v", from: null, to: "a", generation: 3, cause: "place" },
      { kind: "blocked", vserverId: "v", blocked: null },
    ]);
  });

  test("no running vserver is stopped to make room for a higher-priority one", () => {
    const state = cluster(
      [node("dead", { alive: false, hasDied: true }), node("a", { vserversMax: 1 })],
      [vserver("low", "a", { priority: 0 }), vserver("high", "dead", { priority: 9 })],
    );
    assert.deepEqual(placements(state), { low: "a", high: null });
  });

  test("at equal priority a down vserver gets the slot before a draining node's running one", () => {
    const state = cluster(
      [
        node("dead", { alive: false, hasDied: true }),
        node("drained", { operatorState: "draining" }),
        node("a", { vserversMax: 1 }),
      ],
      [vserver("a-running", "drained"), vserver("z-down", "dead")],
    );
    assert.deepEqual(placements(state), { "a-running": "drained", "z-down": "a" });
  });
});

describe("pinned vservers", () => {
  test("a pinned vserver stays on its dead node, blocked pinned-node-dead, its generation unchanged", () => {
    const state = cluster(
      [node("dead", { alive: false, hasDied: true }), node("a")],
      [vserver("p", "dead", { pinned: true })],
    );
    const actions = plan(state, NOW, POLICY);
    assert.deepEqual(actions, [
      { kind: "blocked", vserverId: "p", blocked: { code: "pinned-node-dead", node: "dead" } },
    ]);
  });

  test("when its node comes back the pinned vserver runs there again: only its blocked reason clears", () => {
    const state = cluster(
      [node("back", { hasDied: true, sinceMs: NOW - 1 }), node("a")],
      [vserver("p", "back", { pinned: true, blocked: { code: "pinned-node-dead", node: "back" } })],
    );
    assert.deepEqual(plan(state, NOW, POLICY), [{ kind: "blocked", vserverId: "p", blocked: null }]);
  });

  test("an operator drain moves a pinned vserver too", () => {
    const state = cluster(
      [node("drained", { operatorState: "draining" }), node("a")],
      [vserver("p", "drained", { pinned: true })],
    );
    assert.deepEqual(placements(state), { p: "a" });
  });
});

describe("reach: client subnets and storage paths", () => {
  const subnetA = "subnet:10.7.1.0/24";
  const storageS1 = "storage:s1";
  const needs = { requires: [subnetA, storageS1] };

  test("a vserver goes only to a node that reaches all it requires", () => {
    const state = cluster(
      [
        node("a", { reaches: [subnetA] }),
        node("b", { reaches: [storageS1] }),
        node("c", { reaches: [subnetA, storageS1], load: { loadPerCore: 9, memoryFreeBytes: 0 } }),
      ],
      [vserver("v", null, needs), vserver("free", null)],
    );
    const after = placements(state);
    assert.equal(after.v, "c", "the only node reaching both, though the most loaded");
    assert.notEqual(after.free, null);
  });

  test("a vserver whose live node lost a storage path moves at once, within the cooldown too", () => {
    const state = cluster(
      [node("a", { reaches: [subnetA] }), node("b", { reaches: [subnetA, storageS1] })],
      [vserver("v", "a", { ...needs, placement: { node: "a", generation: 3, sinceMs: NOW - 10 } })],
    );
    const [action] = placementActions(plan(state, NOW, POLICY));
    assert.deepEqual(action, {
      kind: "placement",
      vserverId: "v",
      from: "a",
      to: "b",
      generation: 4,
      cause: "unreachable",
    });
  });

  test("with no node that reaches it all, it stays on its node, blocked unreachable, naming what is missing", () => {
    const state = cluster(
      [node("a", { reaches: [subnetA] }), node("b", { reaches: [subnetA], vserversMax: 5 })],
      [vserver("v", "a", needs)],
    );
    assert.equal(placements(state).v, "a");
    assert.deepEqual(blockedOf(state, "v"), { code: "unreachable", missing: [storageS1] });
  });

  test("a pinned vserver stays, blocked unreachable", () => {
    const state = cluster(
      [node("a", { reaches: [subnetA] }), node("b", { reaches: [subnetA, storageS1] })],
      [vserver("v", "a", { ...needs, pinned: true })],
    );
    assert.equal(placements(state).v, "a");
    assert.deepEqual(blockedOf(state, "v"), { code: "unreachable", missing: [storageS1] });
  });

  test("the unfit node set aside for one choice still takes the next vserver", () => {
    const state = cluster(
      [
        node("a", { reaches: [subnetA, storageS1], vserversMax: 4 }),
        node("b", { reaches: [], vserversMax: 100 }),
      ],
      [vserver("v", null, needs), vserver("w", null), vserver("x", null, needs)],
    );
    const after = placements(state);
    assert.equal(after.v, "a");
    assert.equal(after.x, "a");
    assert.equal(after.w, "b");
  });

  test("planning again after the move changes nothing", () => {
    const state = cluster(
      [node("a", { reaches: [subnetA] }), node("b", { reaches: [subnetA, storageS1] })],
      [vserver("v", "a", needs)],
    );
    const after = applyPlan(state, plan(state, NOW, POLICY), NOW);
    assert.deepEqual(plan(after, NOW, POLICY), []);
  });
});

describe("no failback and no flapping", () => {
  test("a node that comes back gets nothing back", () => {
    const state = cluster(
      [node("back", { hasDied: true, sinceMs: 0 }), node("a")],
      [vserver("v", "a", { placement: { node: "a", generation: 2, sinceMs: 0 } })],
    );
    assert.deepEqual(plan(state, NOW, POLICY), []);
  });

  test("a node back from the dead receives nothing until it has been alive for the settle time", () => {
    const state = (sinceMs: number) =>
      cluster([node("back", { hasDied: true, sinceMs })], [vserver("v", null)]);
    assert.equal(placements(state(NOW - POLICY.nodeSettleMs + 1)).v, null);
    assert.deepEqual(blockedOf(state(NOW - POLICY.nodeSettleMs + 1), "v"), { code: "no-node" });
    assert.equal(placements(state(NOW - POLICY.nodeSettleMs)).v, "back");
  });

  test("a node that never died needs no settling", () => {
    const state = cluster([node("fresh", { sinceMs: NOW })], [vserver("v", null)]);
    assert.equal(placements(state).v, "fresh");
  });

  test("a vserver moved within the cooldown is not drained yet, blocked cooldown until it ends", () => {
    const movedAt = NOW - 1_000;
    const state = cluster(
      [node("drained", { operatorState: "draining" }), node("a")],
      [vserver("v", "drained", { placement: { node: "drained", generation: 3, sinceMs: movedAt } })],
    );
    assert.equal(placements(state).v, "drained");
    assert.deepEqual(blockedOf(state, "v"), { code: "cooldown", untilMs: movedAt + POLICY.moveCooldownMs });
    assert.equal(placements(state, movedAt + POLICY.moveCooldownMs).v, "a");
  });

  test("the cooldown never holds a vserver on a dead node", () => {
    const state = cluster(
      [node("dead", { alive: false, hasDied: true, sinceMs: NOW }), node("a")],
      [vserver("v", "dead", { placement: { node: "dead", generation: 3, sinceMs: NOW - 1 } })],
    );
    assert.equal(placements(state).v, "a");
  });

  test("planning again on the applied state changes nothing", () => {
    const state = cluster(
      [
        node("dead", { alive: false, hasDied: true }),
        node("drained", { operatorState: "draining" }),
        node("a", { vserversMax: 2 }),
      ],
      [
        vserver("v1", "dead", { priority: 3 }),
        vserver("v2", "dead"),
        vserver("v3", "drained"),
        vserver("p", "dead", { pinned: true }),
        vserver("n", null),
      ],
    );
    const after = applyPlan(state, plan(state, NOW, POLICY), NOW);
    assert.deepEqual(plan(after, NOW, POLICY), []);
  });
});

describe("operator states", () => {
  test("a disabled node keeps its vservers and receives nothing new", () => {
    const state = cluster(
      [node("off", { operatorState: "disabled", vserversMax: 10 }), node("a", { vserversMax: 10 })],
      [vserver("kept", "off"), vserver("new", null)],
    );
    assert.deepEqual(placements(state), { kept: "off", new: "a" });
  });

  test("a draining node's vservers move off", () => {
    const state = cluster(
      [node("drained", { operatorState: "draining" }), node("a"), node("b")],
      [vserver("v1", "drained"), vserver("v2", "drained")],
    );
    const actions = placementActions(plan(state, NOW, POLICY));
    assert.deepEqual(actions.map((a) => [a.to, a.cause]).sort(), [
      ["a", "drain"],
      ["b", "drain"],
    ]);
  });

  test("a draining node's vserver with nowhere to go keeps running there, blocked no-capacity", () => {
    const state = cluster(
      [node("drained", { operatorState: "draining" }), node("a", { vserversMax: 0 })],
      [vserver("v", "drained")],
    );
    assert.equal(placements(state).v, "drained");
    assert.deepEqual(blockedOf(state, "v"), { code: "no-capacity" });
  });
});

describe("bad input", () => {
  const rejects = (state: ClusterState, code: string, pattern: RegExp) =>
    assert.throws(
      () => plan(state, NOW, POLICY),
      (error) => error instanceof ClusterStateError && error.code === code && pattern.test(error.message),
    );

  test("a placement on an unknown node", () => {
    rejects(cluster([node("a")], [vserver("v", "ghost")]), "UNKNOWN_NODE", /vserver v: placed on node ghost/);
  });

  test("duplicate node ids, vserver ids, names, VIPs and volumes", () => {
    rejects(cluster([node("a"), node("a")], []), "DUPLICATE", /node a: two nodes/);
    rejects(
      cluster([node("a")], [vserver("v", "a"), vserver("v", null, { name: "other" })]),
      "DUPLICATE",
      /vserver v: two vservers/,
    );
    rejects(
      cluster([node("a")], [vserver("v", "a"), vserver("w", null, { name: "name-v" })]),
      "DUPLICATE",
      /name name-v is also used by vserver v/,
    );
    rejects(
      cluster([node("a")], [vserver("v", "a"), vserver("w", null, { vips: ["vip-v-a", "x"] })]),
      "DUPLICATE",
      /VIP vip-v-a/,
    );
    rejects(
      cluster([node("a")], [vserver("v", "a"), vserver("w", null, { volumes: ["vol-v"] })]),
      "DUPLICATE",
      /volume vol-v/,
    );
    rejects(
      cluster([node("a")], [vserver("v", "a", { vips: ["x", "x"] })]),
      "DUPLICATE",
      /lists VIP x twice/,
    );
  });

  test("out-of-range fields", () => {
    rejects(cluster([node("a")], [vserver("v", "a", { vips: ["only"] })]), "INVALID", /at least 2 VIPs/);
    rejects(cluster([node("a")], [vserver("v", "a", { volumes: [] })]), "INVALID", /at least one volume/);
    rejects(cluster([node("a", { vserversMax: -1 })], []), "INVALID", /vserversMax/);
    rejects(cluster([node("a", { sinceMs: NOW + 1 })], []), "INVALID", /after now/);
    rejects(cluster([node("a")], [vserver("v", "a", { priority: 0.5 })]), "INVALID", /priority/);
    rejects(
      cluster([node("a")], [vserver("v", "a", { placement: { node: "a", generation: -1, sinceMs: 0 } })]),
      "INVALID",
      /generation/,
    );
  });

  test("a policy with a negative time", () => {
    assert.throws(
      () => plan(cluster([], []), NOW, { ...PLANNER_POLICY_DEFAULT, nodeSettleMs: -1 }),
      RangeError,
    );
  });

  test("applying a plan to a state it was not made from is a bug, caught", () => {
    const state = cluster([node("a")], [vserver("v", null)]);
    const actions = plan(state, NOW, POLICY);
    const moved = applyPlan(state, actions, NOW);
    assert.throws(() => applyPlan(moved, actions, NOW), AssertionFailure);
  });
});
