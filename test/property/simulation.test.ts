/**
 * A bounded run of the planner simulation (sim/): a few seeds of a few thousand steps each, with every
 * planner rule and the cluster-wide safety checks after every step. `npm run sim` runs longer ones.
 *
 * FLOTILLA_SIM_SEED sets the first seed (default 1), FLOTILLA_SIM_STEPS the steps per seed.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { main } from "../../sim/main.ts";
import { runSimulation, SIM_DEFAULTS } from "../../sim/simulation.ts";
import { envInt } from "../support/model-sequence.ts";

const FIRST_SEED = envInt("FLOTILLA_SIM_SEED", 1);
const STEPS = envInt("FLOTILLA_SIM_STEPS", 2_000);
const SEEDS = 3;

for (let seed = FIRST_SEED; seed < FIRST_SEED + SEEDS; seed++) {
  test(`seed ${seed}: ${STEPS} steps of faults keep every rule, then every vserver runs once healed`, () => {
    const report = runSimulation({ ...SIM_DEFAULTS, seed, steps: STEPS });
    // The run must have exercised what it checks, not drifted into a quiet corner.
    assert.ok(report.events.kill > STEPS / 50, `only ${report.events.kill} kills`);
    assert.ok(report.moves.failover > 0, "no failover happened");
    assert.ok(report.moves.drain > 0, "no drain happened");
    assert.ok(report.stepsShortOfCapacity > 0, "capacity never ran short");
    assert.ok(report.stepsShortOfCapacity < STEPS, "capacity was always short");
  });
}

test("a larger cluster (60 nodes, 400 vservers) keeps every rule too", () => {
  runSimulation({ ...SIM_DEFAULTS, seed: FIRST_SEED, steps: 200, nodeCount: 60, vserverCount: 400 });
});

test("the same seed gives the same run", () => {
  const options = { ...SIM_DEFAULTS, seed: FIRST_SEED, steps: 300 };
  assert.equal(runSimulation(options).digest, runSimulation(options).digest);
  assert.notEqual(runSimulation(options).digest, runSimulation({ ...options, seed: FIRST_SEED + 1 }).digest);
});

test("npm run sim: one line per seed, exit code 0 when every seed passes", () => {
  const lines: string[] = [];
  assert.equal(
    main(["--seed", "7", "--seeds", "2", "--steps", "50"], (line) => lines.push(line)),
    0,
  );
  assert.equal(lines.length, 2);
  assert.match(lines[0]!, /^seed 7: 50 steps ok/);
  assert.match(lines[1]!, /^seed 8: 50 steps ok/);
});

test("npm run sim: bad options are refused", () => {
  assert.throws(() => main(["--steps", "many"], () => {}), /--steps must be a whole number/);
  assert.throws(() => main(["--nodes", "1"], () => {}), /nodeCount must be an integer from 2/);
});
