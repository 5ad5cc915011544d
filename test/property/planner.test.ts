/**
 * Property tests of the planner: on random cluster states (nodes dead and alive, settling, disabled,
 * draining, storage-only, full; vservers placed anywhere or nowhere, pinned or not, recently moved or
 * not), each rule of sim/checks.ts holds for the plan and the state it leads to.
 *
 * FLOTILLA_PROPERTY_RUNS sets the number of states per property; FLOTILLA_PROPERTY_SEED replays one.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { makeNode, makeVserver } from "../../sim/build.ts";
import { PLANNER_RULES, type PlannerRule, planStep } from "../../sim/checks.ts";
import type { ClusterNode, ClusterState, PlannerPolicy, Vserver } from "../../src/cluster/model.ts";
import { applyPlan, plan } from "../../src/cluster/planner.ts";
import { envInt } from "../support/model-sequence.ts";

const NOW = 10_000_000;
const POLICY: PlannerPolicy = { nodeSettleMs: 30_000, moveCooldownMs: 45_000 };
/** Times up to here before now: some nodes still settling, some vservers still in their cooldown. */
const AGO_MAX = 90_000;

const seedText = process.env.FLOTILLA_PROPERTY_SEED;
const RUN_OPTIONS = {
  numRuns: envInt("FLOTILLA_PROPERTY_RUNS", 300),
  ...(seedText === undefined ? {} : { seed: Number(seedText) }),
};

const nodeArbitrary = (id: string): fc.Arbitrary<ClusterNode> =>
  fc
    .record({
      roles: fc.constantFrom<ClusterNode["roles"]>(["filer", "storage"], ["filer"], ["storage"]),
      alive: fc.oneof(
        { weight: 3, arbitrary: fc.constant(true) },
        { weight: 1, arbitrary: fc.constant(false) },
      ),
      agoMs: fc.integer({ min: 0, max: AGO_MAX }),
      hasDied: fc.boolean(),
      operatorState: fc.constantFrom<ClusterNode["operatorState"]>(
        "enabled",
        "enabled",
        "disabled",
        "draining",
      ),
      vserversMax: fc.integer({ min: 0, max: 6 }),
      loadPerCore: fc.integer({ min: 0, max: 3 }),
      memoryFreeBytes: fc.integer({ min: 0, max: 3 }),
    })
    .map(({ agoMs, alive, hasDied, loadPerCore, memoryFreeBytes, ...fields }) =>
      makeNode(id, {
        ...fields,
        alive,
        // A dead node has died; a live one may or may not have.
        hasDied: hasDied || !alive,
        sinceMs: NOW - agoMs,
        load: { loadPerCore: loadPerCore / 2, memoryFreeBytes },
      }),
    );

const blockedArbitrary: fc.Arbitrary<Vserver["blocked"]> = fc.constantFrom(
  null,
  { code: "no-capacity" },
  { code: "no-node" },
  { code: "pinned-node-dead", node: "n0" },
  { code: "cooldown", untilMs: NOW },
);

const vserverArbitrary = (id: string, nodeCount: number): fc.Arbitrary<Vserver> =>
  fc
    .record({
      // Half the vservers crowd onto the first two nodes, so one dead node often has more
      // vservers than there are targets with room, and spreading has to go round again.
      nodeIndex: fc.oneof(
        fc.integer({ min: -1, max: Math.min(1, nodeCount - 1) }),
        fc.integer({ min: -1, max: nodeCount - 1 }),
      ),
      priority: fc.integer({ min: 0, max: 4 }),
      pinned: fc.boolean(),
      generation: fc.integer({ min: 0, max: 5 }),
      agoMs: fc.integer({ min: 0, max: AGO_MAX }),
      blocked: blockedArbitrary,
    })
    .map(({ nodeIndex, generation, agoMs, ...fields }) => {
      const node = nodeIndex < 0 ? null : `n${nodeIndex}`;
      return makeVserver(id, node, { ...fields, placement: { node, generation, sinceMs: NOW - agoMs } });
    });

const clusterArbitrary: fc.Arbitrary<ClusterState> = fc.integer({ min: 1, max: 10 }).chain((nodeCount) =>
  fc.record({
    nodes: fc.tuple(...Array.from({ length: nodeCount }, (_, i) => nodeArbitrary(`n${i}`))),
    vservers: fc
      .integer({ min: 0, max: 30 })
      .chain((count) =>
        fc.tuple(...Array.from({ length: count }, (_, i) => vserverArbitrary(`v${i}`, nodeCount))),
      ),
  }),
);

function ruleProperty(title: string, rule: PlannerRule): void {
  test(title, () => {
    fc.assert(
      fc.property(clusterArbitrary, (state) => PLANNER_RULES[rule](planStep(state, NOW, POLICY))),
      RUN_OPTIONS,
    );
  });
}

ruleProperty("every change of node raises the placement generation by exactly one", "generation");
ruleProperty("vservers go only to live, enabled, settled filer nodes, within capacity", "targets");
ruleProperty(
  "a dead node's unpinned vservers move to a node that may take them, or wait while no slot is left",
  "failover",
);
ruleProperty("a pinned vserver never moves because its node died; it is blocked instead", "pinned");
ruleProperty("nothing moves off a live node that is not draining (no failback)", "noFailback");
ruleProperty("a draining node's vservers leave it, unless in their cooldown or no slot is left", "drain");
ruleProperty("a vserver without a node gets one while a slot is left", "place");
ruleProperty("no vserver left without a slot has a higher priority than one that got a slot", "priority");
ruleProperty("each placement goes to a least-loaded node, fewest from the same origin first", "leastLoaded");
ruleProperty("one node's vservers are spread: a node with room received at most one fewer", "spread");
ruleProperty("every vserver's blocked reason says what holds it, and only when something does", "blocked");
ruleProperty("planning again on the applied state changes nothing", "idempotent");

/** A single node dies, everything else healthy: the textbook failover. */
const singleFailureArbitrary: fc.Arbitrary<ClusterState> = fc
  .record({
    displaced: fc.integer({ min: 2, max: 12 }),
    capacities: fc.array(fc.integer({ min: 1, max: 8 }), { minLength: 2, maxLength: 6 }),
    running: fc.array(fc.integer({ min: 0, max: 6 }), { minLength: 6, maxLength: 6 }),
  })
  .map(({ displaced, capacities, running }) => {
    const nodes = [
      makeNode("dead", { alive: false, hasDied: true }),
      ...capacities.map((vserversMax, i) => makeNode(`n${i}`, { vserversMax })),
    ];
    const vservers = Array.from({ length: displaced }, (_, i) => makeVserver(`d${i}`, "dead"));
    capacities.forEach((vserversMax, i) => {
      const count = Math.min(running[i]!, vserversMax);
      for (let j = 0; j < count; j++) vservers.push(makeVserver(`n${i}-${j}`, `n${i}`));
    });
    return { nodes, vservers };
  });

test("a failed node's vservers go to more than one node when more than one has room", () => {
  fc.assert(
    fc.property(singleFailureArbitrary, (state) => {
      const counts = new Map<string, number>();
      for (const v of state.vservers)
        if (v.placement.node !== null) counts.set(v.placement.node, (counts.get(v.placement.node) ?? 0) + 1);
      const roomy = state.nodes.filter((n) => n.alive && (counts.get(n.id) ?? 0) < n.vserversMax);
      fc.pre(roomy.length >= 2);
      const after = applyPlan(state, plan(state, NOW, POLICY), NOW);
      const targets = new Set(
        after.vservers.filter((v) => v.id.startsWith("d")).map((v) => v.placement.node),
      );
      targets.delete(null);
      assert.ok(targets.size >= 2, `all displaced vservers went to ${[...targets].join(", ")}`);
    }),
    RUN_OPTIONS,
  );
});

test("a failed node with more vservers than there are targets: spread round by round, least loaded first", () => {
  fc.assert(
    fc.property(singleFailureArbitrary, (state) => {
      const step = planStep(state, NOW, POLICY);
      PLANNER_RULES.leastLoaded(step);
      PLANNER_RULES.spread(step);
    }),
    RUN_OPTIONS,
  );
});

test("the plan does not depend on the order nodes and vservers are listed in", () => {
  fc.assert(
    fc.property(clusterArbitrary, fc.integer(), (state, shuffleSeed) => {
      const shuffled: ClusterState = {
        nodes: fc.sample(fc.shuffledSubarray([...state.nodes], { minLength: state.nodes.length }), {
          seed: shuffleSeed,
          numRuns: 1,
        })[0]!,
        vservers: fc.sample(fc.shuffledSubarray([...state.vservers], { minLength: state.vservers.length }), {
          seed: shuffleSeed,
          numRuns: 1,
        })[0]!,
      };
      const byId = (s: ClusterState) =>
        Object.fromEntries(applyPlan(s, plan(s, NOW, POLICY), NOW).vservers.map((v) => [v.id, v]));
      assert.deepEqual(byId(shuffled), byId(state));
    }),
    RUN_OPTIONS,
  );
});
