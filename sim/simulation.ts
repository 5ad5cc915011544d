/**
 * Deterministic simulation of the planner under faults. From one seed: a cluster of nodes (some
 * storage-only, capacities uneven) and vservers (some pinned, priorities mixed); then, step after
 * step, the logical clock moves on, random nodes die and come back, operators enable, disable and
 * drain nodes, create, delete, pin and move vservers, and the planner's plan is applied as the
 * master would. After every step every rule in checks.ts must hold, and so must the cluster-wide
 * safety checks below. A final liveness phase heals everything, lets time pass, and requires every
 * vserver to run on a live node.
 *
 * Same seed, same run: the report carries a digest of the final state to prove it.
 */
import type { ClusterNode, ClusterState, NodeRole, PlannerPolicy, Vserver } from "../src/cluster/model.ts";
import { PLANNER_POLICY_DEFAULT } from "../src/cluster/planner.ts";
import { SeededRandom } from "../src/util/random.ts";
import { makeNode, makeVserver, randomLoad } from "./build.ts";
import { checkAllRules, type PlanStep, planStep } from "./checks.ts";

export const SIM_STEPS_MAX = 10_000_000;
export const SIM_NODES_MAX = 1_000;
export const SIM_VSERVERS_MAX = 10_000;

export interface SimOptions {
  readonly seed: number;
  readonly steps: number;
  readonly nodeCount: number;
  /** Vservers at the start; creations and deletions move around it, up to 25% more. */
  readonly vserverCount: number;
  readonly policy: PlannerPolicy;
}

export const SIM_DEFAULTS: Omit<SimOptions, "seed"> = {
  steps: 10_000,
  nodeCount: 12,
  vserverCount: 40,
  policy: PLANNER_POLICY_DEFAULT,
};

type EventKind = "kill" | "revive" | "operator" | "create" | "delete" | "pin" | "move" | "quiet";

export interface SimReport {
  readonly seed: number;
  readonly steps: number;
  readonly simulatedMs: number;
  readonly events: Readonly<Record<EventKind, number>>;
  /** Placement changes the planner made, by cause; `unplaced`: failovers with nowhere to go. */
  readonly moves: {
    readonly place: number;
    readonly failover: number;
    readonly drain: number;
    readonly unreachable: number;
    readonly unplaced: number;
  };
  /** The most vservers down (no node, or a dead one) after any one step. */
  readonly downMax: number;
  /** Steps after which some unpinned vserver waited for capacity. */
  readonly stepsShortOfCapacity: number;
  /** FNV-1a of the final state: equal seeds must give equal digests. */
  readonly digest: string;
}

/** The seed broke a rule: everything needed to replay it. */
export class SimFailure extends Error {
  override name = "SimFailure";
  readonly seed: number;
  readonly step: number;
  constructor(seed: number, step: number, cause: unknown) {
    super(`seed ${seed} failed at step ${step}: ${cause instanceof Error ? cause.message : String(cause)}`, {
      cause,
    });
    this.seed = seed;
    this.step = step;
  }
}

function checkOptions(options: SimOptions): void {
  const bounded = (value: number, min: number, max: number, name: string) => {
    if (!Number.isSafeInteger(value) || value < min || value > max)
      throw new RangeError(`${name} must be an integer from ${min} to ${max}, got ${value}`);
  };
  bounded(options.seed, 0, 0xffff_ffff, "seed");
  bounded(options.steps, 0, SIM_STEPS_MAX, "steps");
  bounded(options.nodeCount, 2, SIM_NODES_MAX, "nodeCount");
  bounded(options.vserverCount, 0, SIM_VSERVERS_MAX, "vserverCount");
}

/** The mutable world around the planner: the cluster, the clock, the dice and the tallies. */
class World {
  state: ClusterState;
  nowMs = 0;
  nextVserver = 0;
  readonly random: SeededRandom;
  readonly policy: PlannerPolicy;
  readonly vserversMax: number;
  readonly events: Record<EventKind, number> = {
    kill: 0,
    revive: 0,
    operator: 0,
    create: 0,
    delete: 0,
    pin: 0,
    move: 0,
    quiet: 0,
  };
  readonly moves = { place: 0, failover: 0, drain: 0, unreachable: 0, unplaced: 0 };
  downMax = 0;
  stepsShortOfCapacity = 0;
  /** Each vserver's generation after the last step: generations never go back, operator moves included. */
  readonly generations = new Map<string, number>();

  constructor(options: SimOptions) {
    this.random = new SeededRandom(options.seed);
    this.policy = options.policy;
    const nodes: ClusterNode[] = [];
    const filerCount = options.nodeCount - Math.floor(options.nodeCount / 6);
    // Uneven capacities, about 1.6 slots per vserver in all: one failure is usually absorbed, a few
    // at once (or drains on top) leave the cluster short.
    const slotsMean = (1.6 * Math.max(options.vserverCount, 1)) / filerCount;
    for (let i = 0; i < options.nodeCount; i++) {
      // One node in six is storage-only: it must never receive a vserver.
      const roles: NodeRole[] = i % 6 === 5 ? ["storage"] : ["filer", "storage"];
      const vserversMax = Math.max(1, Math.round(slotsMean * (0.5 + this.random.float())));
      nodes.push(makeNode(`n${i}`, { roles, vserversMax, load: randomLoad(this.random) }));
    }
    const capacity = nodes.reduce((sum, n) => sum + (n.roles.includes("filer") ? n.vserversMax : 0), 0);
    // Room for every vserver when all nodes are up, so the liveness phase can require them all served.
    this.vserversMax = Math.min(capacity, Math.ceil(options.vserverCount * 1.25));
    this.state = { nodes, vservers: [] };
    for (let i = 0; i < Math.min(options.vserverCount, this.vserversMax); i++) this.create();
  }

  create(): void {
    const id = `v${this.nextVserver++}`;
    const vserver = makeVserver(id, null, {
      priority: this.random.int(5),
      pinned: this.random.int(6) === 0,
      placement: { node: null, generation: 0, sinceMs: this.nowMs },
    });
    this.state = { ...this.state, vservers: [...this.state.vservers, vserver] };
  }

  setNode(index: number, fields: Partial<ClusterNode>): void {
    const nodes = this.state.nodes.map((node, i) => (i === index ? { ...node, ...fields } : node));
    this.state = { ...this.state, nodes };
  }

  setVserver(index: number, vserver: Vserver | undefined): void {
    const vservers = [...this.state.vservers];
    if (vserver === undefined) vservers.splice(index, 1);
    else vservers[index] = vserver;
    this.state = { ...this.state, vservers };
  }
}

/** An operator moves a vserver to a live enabled filer with room, as the admin API would. */
function operatorMove(world: World): boolean {
  const vservers = world.state.vservers;
  if (vservers.length === 0) return false;
  const index = world.random.int(vservers.length);
  const vserver = vservers[index]!;
  const counts = new Map<string, number>();
  for (const v of vservers)
    if (v.placement.node !== null) counts.set(v.placement.node, (counts.get(v.placement.node) ?? 0) + 1);
  const targets = world.state.nodes.filter(
    (n) =>
      n.alive &&
      n.operatorState === "enabled" &&
      n.roles.includes("filer") &&
      n.id !== vserver.placement.node &&
      (counts.get(n.id) ?? 0) < n.vserversMax,
  );
  if (targets.length === 0) return false;
  const to = targets[world.random.int(targets.length)]!;
  const placement = { node: to.id, generation: vserver.placement.generation + 1, sinceMs: world.nowMs };
  world.setVserver(index, { ...vserver, placement });
  return true;
}

/** Index of a random node with the given liveness, or -1 if there is none. */
function pickNode(world: World, alive: boolean): number {
  const indexes = world.state.nodes.flatMap((node, i) => (node.alive === alive ? [i] : []));
  return indexes.length === 0 ? -1 : indexes[world.random.int(indexes.length)]!;
}

function kill(world: World): boolean {
  const index = pickNode(world, true);
  if (index >= 0) world.setNode(index, { alive: false, sinceMs: world.nowMs, hasDied: true });
  return index >= 0;
}

function revive(world: World): boolean {
  const index = pickNode(world, false);
  if (index >= 0) world.setNode(index, { alive: true, sinceMs: world.nowMs, load: randomLoad(world.random) });
  return index >= 0;
}

/** An operator disables or drains an enabled node, or (twice as often) enables one again. */
function operate(world: World): boolean {
  const enable = world.random.int(3) > 0;
  const indexes = world.state.nodes.flatMap((node, i) =>
    (node.operatorState === "enabled") !== enable ? [i] : [],
  );
  if (indexes.length === 0) return false;
  const operatorState = enable ? "enabled" : world.random.int(2) === 0 ? "disabled" : "draining";
  world.setNode(indexes[world.random.int(indexes.length)]!, { operatorState });
  return true;
}

/**
 * One random fault or operator action; returns what happened ("quiet" when nothing could). Nodes
 * die (alone, or two at once) less often than they come back, so most of the time most of the
 * cluster is up, with stretches where it is not.
 */
function perturb(world: World): EventKind {
  const { vservers } = world.state;
  const roll = world.random.int(100);
  if (roll < 4) return kill(world) ? "kill" : "quiet";
  if (roll < 5) return kill(world) && kill(world) ? "kill" : "quiet";
  if (roll < 20) return revive(world) ? "revive" : "quiet";
  if (roll < 23) return operate(world) ? "operator" : "quiet";
  if (roll >= 23 && roll < 28 && vservers.length < world.vserversMax) {
    world.create();
    return "create";
  }
  if (roll >= 28 && roll < 31 && vservers.length > 0) {
    world.setVserver(world.random.int(vservers.length), undefined);
    return "delete";
  }
  if (roll >= 31 && roll < 33 && vservers.length > 0) {
    const i = world.random.int(vservers.length);
    world.setVserver(i, { ...vservers[i]!, pinned: !vservers[i]!.pinned });
    return "pin";
  }
  if (roll >= 33 && roll < 37 && operatorMove(world)) return "move";
  return "quiet";
}

// --- Cluster-wide checks, beyond the per-step rules -------------------------------------------------

function isDown(vserver: Vserver, alive: ReadonlySet<string>): boolean {
  return vserver.placement.node === null || !alive.has(vserver.placement.node);
}

/** Safety after a step: generations never go back; an unpinned vserver is down only for lack of room. */
function checkSafety(world: World, step: PlanStep): void {
  const alive = new Set(step.after.nodes.filter((n) => n.alive).map((n) => n.id));
  let down = 0;
  let short = false;
  for (const vserver of step.after.vservers) {
    const previous = world.generations.get(vserver.id) ?? 0;
    if (vserver.placement.generation < previous)
      throw new Error(`vserver ${vserver.id}: generation ${vserver.placement.generation} after ${previous}`);
    world.generations.set(vserver.id, vserver.placement.generation);
    if (!isDown(vserver, alive)) continue;
    down++;
    if (vserver.pinned) continue;
    const code = vserver.blocked?.code;
    if (vserver.placement.node !== null || (code !== "no-capacity" && code !== "no-node"))
      throw new Error(`unpinned vserver ${vserver.id} is down on ${vserver.placement.node} (${code})`);
    short = true;
  }
  world.downMax = Math.max(world.downMax, down);
  if (short) world.stepsShortOfCapacity++;
}

function tally(world: World, step: PlanStep): void {
  for (const action of step.actions) {
    if (action.kind !== "placement") continue;
    if (action.to === null) world.moves.unplaced++;
    else world.moves[action.cause]++;
  }
}

/** Plans at the world's time, checks every rule and the safety of the result, and applies it. */
function planAndCheck(world: World, seed: number, step: number): void {
  try {
    const planned = planStep(world.state, world.nowMs, world.policy);
    checkAllRules(planned);
    checkSafety(world, planned);
    tally(world, planned);
    world.state = planned.after;
  } catch (error) {
    throw new SimFailure(seed, step, error);
  }
}

/** Heals every node and lets the settle and cooldown times pass: then every vserver must run. */
function liveness(world: World, seed: number, step: number): void {
  world.nowMs += 1;
  const healed = (node: ClusterNode): ClusterNode =>
    node.alive
      ? { ...node, operatorState: "enabled" }
      : { ...node, alive: true, sinceMs: world.nowMs, operatorState: "enabled" };
  world.state = { ...world.state, nodes: world.state.nodes.map(healed) };
  world.nowMs += Math.max(world.policy.nodeSettleMs, world.policy.moveCooldownMs);
  planAndCheck(world, seed, step);
  const down = world.state.vservers.filter((v) => v.placement.node === null);
  if (down.length > 0)
    throw new SimFailure(
      seed,
      step,
      new Error(`after healing, ${down.length} vservers down, first ${down[0]!.id}`),
    );
}

function fnv1a(text: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return hash.toString(16).padStart(8, "0");
}

/** Runs one seed; throws SimFailure (with the seed and step) on the first broken rule. */
export function runSimulation(options: SimOptions): SimReport {
  checkOptions(options);
  const world = new World(options);
  for (let step = 0; step < options.steps; step++) {
    world.nowMs += 250 + world.random.int(4_750);
    world.events[perturb(world)]++;
    planAndCheck(world, options.seed, step);
  }
  liveness(world, options.seed, options.steps);
  return {
    seed: options.seed,
    steps: options.steps,
    simulatedMs: world.nowMs,
    events: { ...world.events },
    moves: { ...world.moves },
    downMax: world.downMax,
    stepsShortOfCapacity: world.stepsShortOfCapacity,
    digest: fnv1a(JSON.stringify(world.state)),
  };
}
