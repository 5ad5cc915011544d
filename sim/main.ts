/**
 * Runs the planner simulation from the command line:
 *
 *   npm run sim                                   (a fresh seed, 10,000 steps)
 *   npm run sim -- --seed 42 --steps 100000 [--nodes 12] [--vservers 40] [--seeds 10]
 *
 * --seeds N runs N seeds from --seed on. Prints one line per seed, and on failure the command that
 * replays it; exits 1 if any seed failed.
 */
import { parseArgs } from "node:util";
import { runSimulation, SIM_DEFAULTS, SimFailure, type SimReport } from "./simulation.ts";

const SEEDS_MAX = 10_000;

function integer(text: string | undefined, fallback: number, name: string): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 0)
    throw new RangeError(`--${name} must be a whole number, got ${text}`);
  return value;
}

function describe(report: SimReport, elapsedMs: number): string {
  const { events, moves } = report;
  return [
    `seed ${report.seed}: ${report.steps} steps ok in ${elapsedMs.toFixed(0)} ms`,
    `(${(report.simulatedMs / 3_600_000).toFixed(1)} h simulated;`,
    `${events.kill} kills, ${events.revive} revivals, ${events.operator} operator changes,`,
    `${events.create} created, ${events.delete} deleted, ${events.move} operator moves;`,
    `planner: ${moves.place} placed, ${moves.failover} failed over, ${moves.drain} drained, ${moves.unplaced} left waiting;`,
    `at most ${report.downMax} down; ${report.stepsShortOfCapacity} steps short of capacity) digest ${report.digest}`,
  ].join(" ");
}

/** Runs the seeds `argv` asks for, writing one line per seed to `print`; returns the exit code. */
export function main(argv: readonly string[], print: (line: string) => void): number {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      seed: { type: "string" },
      seeds: { type: "string" },
      steps: { type: "string" },
      nodes: { type: "string" },
      vservers: { type: "string" },
    },
  });
  // The one place the simulation takes from the outside world: a seed when none is given, printed.
  const first = integer(values.seed, Date.now() % 0x1_0000_0000, "seed");
  const seeds = Math.min(integer(values.seeds, 1, "seeds"), SEEDS_MAX);
  const options = {
    ...SIM_DEFAULTS,
    steps: integer(values.steps, SIM_DEFAULTS.steps, "steps"),
    nodeCount: integer(values.nodes, SIM_DEFAULTS.nodeCount, "nodes"),
    vserverCount: integer(values.vservers, SIM_DEFAULTS.vserverCount, "vservers"),
  };
  let failed = 0;
  for (let seed = first; seed < first + seeds; seed++) {
    const started = performance.now();
    try {
      print(describe(runSimulation({ ...options, seed: seed >>> 0 }), performance.now() - started));
    } catch (error) {
      if (!(error instanceof SimFailure)) throw error;
      failed++;
      print(`FAILED ${error.message}`);
      print(
        `  replay: npm run sim -- --seed ${error.seed} --steps ${options.steps} --nodes ${options.nodeCount} --vservers ${options.vserverCount}`,
      );
    }
  }
  return failed === 0 ? 0 : 1;
}

if (import.meta.main) process.exitCode = main(process.argv.slice(2), (line) => console.log(line));
