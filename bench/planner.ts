/**
 * Planner benchmark: how long one plan takes at the scale, against its goal of 100 ms for the
 * failover of 1,000 nodes and 10,000 vservers.
 *
 *   npm run bench:planner                  (25 timed runs per case)
 *   npm run bench:planner -- --runs 50 --seed 7
 *
 * Cases, each planned from the same seeded cluster (1,000 filer nodes of 20 slots, measured loads
 * that differ, 10,000 vservers of mixed priority, 5% pinned, spread 10 per node):
 *   failover   10% of the nodes die at once: their ~1,000 vservers move (the goal);
 *   drain      10% of the nodes are drained at once;
 *   bootstrap  all 10,000 vservers are new and unplaced (the largest plan there is).
 * Prints min, median and max of the timed runs (after warm-up runs) and the plan's size, then the
 * failover median against the goal. Timings include checking the input and asserting the plan.
 */
import { parseArgs } from "node:util";
import { makeNode, makeVserver, randomLoad } from "../sim/build.ts";
import type { ClusterNode, ClusterState, PlanAction } from "../src/cluster/model.ts";
import { plan } from "../src/cluster/planner.ts";
import { SeededRandom } from "../src/util/random.ts";

const NODES = 1_000;
const VSERVERS = 10_000;
const SLOTS_PER_NODE = 20;
const AFFECTED_SHARE = 0.1;
const GOAL_MS = 100;
const WARMUP_RUNS = 3;
const RUNS_MAX = 1_000;
const NOW = 10_000_000;

function settings(): { runs: number; seed: number } {
  const { values } = parseArgs({ options: { runs: { type: "string" }, seed: { type: "string" } } });
  const runs = Number(values.runs ?? 25);
  const seed = Number(values.seed ?? 1);
  if (!Number.isSafeInteger(runs) || runs < 1 || runs > RUNS_MAX)
    throw new RangeError(`--runs must be 1 to ${RUNS_MAX}, got ${values.runs}`);
  if (!Number.isSafeInteger(seed) || seed < 0)
    throw new RangeError(`--seed must be a whole number, got ${values.seed}`);
  return { runs, seed };
}

/**
 * The running cluster: every vserver placed, 10 per node. Round-tripped through JSON, as the master
 * would read it from the coordination store (flat strings, not the builders' concatenations).
 */
function steadyCluster(random: SeededRandom): ClusterState {
  const nodes = Array.from({ length: NODES }, (_, i) =>
    makeNode(`node-${i}`, { vserversMax: SLOTS_PER_NODE, load: randomLoad(random) }),
  );
  const vservers = Array.from({ length: VSERVERS }, (_, i) =>
    makeVserver(`vs-${i}`, `node-${i % NODES}`, { priority: random.int(10), pinned: random.int(20) === 0 }),
  );
  return JSON.parse(JSON.stringify({ nodes, vservers })) as ClusterState;
}

/** `change` applied to a random 10% of the nodes. */
function affect(state: ClusterState, random: SeededRandom, change: Partial<ClusterNode>): ClusterState {
  const chosen = new Set<number>();
  while (chosen.size < NODES * AFFECTED_SHARE) chosen.add(random.int(NODES));
  return { ...state, nodes: state.nodes.map((node, i) => (chosen.has(i) ? { ...node, ...change } : node)) };
}

/** Plans `state` `runs` times after warming up; prints the figures and returns the median in ms. */
function measure(label: string, state: ClusterState, runs: number): number {
  let actions: PlanAction[] = [];
  for (let i = 0; i < WARMUP_RUNS; i++) actions = plan(state, NOW);
  const timesMs: number[] = [];
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    actions = plan(state, NOW);
    timesMs.push(performance.now() - started);
  }
  timesMs.sort((a, b) => a - b);
  const median = timesMs[Math.floor(timesMs.length / 2)]!;
  const moves = actions.filter((a) => a.kind === "placement" && a.to !== null).length;
  const waiting = actions.filter((a) => a.kind === "placement" && a.to === null).length;
  const figures = [timesMs[0]!, median, timesMs[timesMs.length - 1]!].map((ms) => ms.toFixed(1).padStart(6));
  console.log(
    `${label.padEnd(10)} min ${figures[0]} ms  median ${figures[1]} ms  max ${figures[2]} ms  ` +
      `(${moves} placed, ${waiting} left waiting, ${actions.length} actions)`,
  );
  return median;
}

const { runs, seed } = settings();
const random = new SeededRandom(seed);
const steady = steadyCluster(random);
console.log(`planner: ${NODES} nodes, ${VSERVERS} vservers, seed ${seed}, ${runs} timed runs per case`);
const failoverMs = measure(
  "failover",
  affect(steady, random, { alive: false, hasDied: true, sinceMs: NOW }),
  runs,
);
measure("drain", affect(steady, random, { operatorState: "draining" }), runs);
const unplaced = steady.vservers.map((v) => ({ ...v, placement: { node: null, generation: 0, sinceMs: 0 } }));
measure("bootstrap", { ...steady, vservers: unplaced }, runs);
const verdict = failoverMs < GOAL_MS ? "met" : "MISSED";
console.log(`goal: a failover plan in under ${GOAL_MS} ms: ${verdict} (median ${failoverMs.toFixed(1)} ms)`);
