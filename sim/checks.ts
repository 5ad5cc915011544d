/**
 * The planner's rules stated as checks on one planning step (state before, plan, state after), each
 * written from the rules rather than from the planner's code, so they can catch its mistakes. The
 * simulation runs them all after every step; the property tests run each on random states.
 */
import type {
  ClusterNode,
  ClusterState,
  NodeId,
  PlanAction,
  PlannerPolicy,
  Vserver,
} from "../src/cluster/model.ts";
import { applyPlan, plan } from "../src/cluster/planner.ts";

export interface PlanStep {
  readonly before: ClusterState;
  readonly actions: readonly PlanAction[];
  readonly after: ClusterState;
  readonly nowMs: number;
  readonly policy: PlannerPolicy;
}

export function planStep(before: ClusterState, nowMs: number, policy: PlannerPolicy): PlanStep {
  const actions = plan(before, nowMs, policy);
  return { before, actions, after: applyPlan(before, actions, nowMs), nowMs, policy };
}

/** A rule the planner broke: in the simulation, the seed fails. */
export class RuleViolation extends Error {
  override name = "RuleViolation";
  readonly rule: string;
  constructor(rule: string, message: string) {
    super(`rule ${rule}: ${message}`);
    this.rule = rule;
  }
}

// --- What the rules are stated in -------------------------------------------------------------------

/** A node may receive a vserver: alive, enabled, a filer, and settled if it ever died. */
function mayReceive(node: ClusterNode, step: PlanStep): boolean {
  if (!node.alive || node.operatorState !== "enabled" || !node.roles.includes("filer")) return false;
  return !node.hasDied || step.nowMs >= node.sinceMs + step.policy.nodeSettleMs;
}

function vserverCounts(state: ClusterState): Map<NodeId, number> {
  const counts = new Map<NodeId, number>();
  for (const { placement } of state.vservers)
    if (placement.node !== null) counts.set(placement.node, (counts.get(placement.node) ?? 0) + 1);
  return counts;
}

/** Whether some node that may receive a vserver still has a free slot after the step. */
function slotLeft(step: PlanStep): boolean {
  const counts = vserverCounts(step.after);
  return step.after.nodes.some(
    (node) => mayReceive(node, step) && (counts.get(node.id) ?? 0) < node.vserversMax,
  );
}

interface Pair {
  readonly before: Vserver;
  readonly after: Vserver;
  /** The node it was on before the step, if any. */
  readonly home: ClusterNode | undefined;
}

function pairs(step: PlanStep): Pair[] {
  const nodes = new Map(step.before.nodes.map((node) => [node.id, node]));
  return step.before.vservers.map((before, index) => {
    const after = step.after.vservers[index]!;
    const home = before.placement.node === null ? undefined : nodes.get(before.placement.node);
    return { before, after, home };
  });
}

const moved = (pair: Pair): boolean => pair.before.placement.node !== pair.after.placement.node;

function nodeOf(step: PlanStep, id: NodeId | null): ClusterNode | undefined {
  return id === null ? undefined : step.after.nodes.find((node) => node.id === id);
}

/** The vserver runs on a node that may receive vservers, or has none while no slot is left. */
function servedOrNoRoom(step: PlanStep, pair: Pair, rule: string): void {
  const node = nodeOf(step, pair.after.placement.node);
  if (node !== undefined && (node === pair.home || mayReceive(node, step))) return;
  if (node === undefined && !slotLeft(step)) return;
  throw new RuleViolation(
    rule,
    `vserver ${pair.after.id} is on ${node?.id ?? "no node"}, and a slot is left`,
  );
}

// --- The rules --------------------------------------------------------------------------------------

/** Each change of node raises the generation by exactly one; nothing else changes it. */
function generation(step: PlanStep): void {
  for (const pair of pairs(step)) {
    const expected = pair.before.placement.generation + (moved(pair) ? 1 : 0);
    if (pair.after.placement.generation !== expected)
      throw new RuleViolation(
        "generation",
        `vserver ${pair.after.id}: ${pair.after.placement.generation}, not ${expected}`,
      );
  }
}

/** A vserver only goes to a node that may receive one, and no node gets more than it may run. */
function targets(step: PlanStep): void {
  const counts = vserverCounts(step.after);
  for (const pair of pairs(step)) {
    const node = nodeOf(step, pair.after.placement.node);
    if (!moved(pair) || node === undefined) continue;
    if (!mayReceive(node, step))
      throw new RuleViolation("targets", `vserver ${pair.after.id} sent to ${node.id}`);
    if ((counts.get(node.id) ?? 0) > node.vserversMax)
      throw new RuleViolation("targets", `node ${node.id} above capacity after receiving ${pair.after.id}`);
  }
}

/** An unpinned vserver of a dead node moves to a node that may take it, or waits for a slot. */
function failover(step: PlanStep): void {
  for (const pair of pairs(step)) {
    if (pair.home === undefined || pair.home.alive || pair.before.pinned) continue;
    if (pair.after.placement.node === pair.home.id)
      throw new RuleViolation("failover", `vserver ${pair.after.id} left on dead node ${pair.home.id}`);
    servedOrNoRoom(step, pair, "failover");
  }
}

/** A pinned vserver never moves because its node died (only a drain moves it); it is blocked instead. */
function pinned(step: PlanStep): void {
  for (const pair of pairs(step)) {
    if (!pair.before.pinned || pair.home === undefined || pair.home.operatorState === "draining") continue;
    if (moved(pair))
      throw new RuleViolation("pinned", `pinned vserver ${pair.after.id} moved off ${pair.home.id}`);
    if (!pair.home.alive && pair.after.blocked?.code !== "pinned-node-dead")
      throw new RuleViolation(
        "pinned",
        `pinned vserver ${pair.after.id} on dead ${pair.home.id} not blocked`,
      );
  }
}

/** Nothing moves off a live node that is not draining: no failback, no rebalancing behind the operator. */
function noFailback(step: PlanStep): void {
  for (const pair of pairs(step)) {
    if (pair.home === undefined || !pair.home.alive || pair.home.operatorState === "draining") continue;
    if (moved(pair))
      throw new RuleViolation("no-failback", `vserver ${pair.after.id} moved off ${pair.home.id}`);
  }
}

/**
 * A draining node's vservers leave it, unless no slot is left or, while the node lives, they moved
 * less than the cooldown ago (and then they do not move).
 */
function drain(step: PlanStep): void {
  for (const pair of pairs(step)) {
    if (pair.home?.operatorState !== "draining") continue;
    const inCooldown =
      pair.home.alive && step.nowMs < pair.before.placement.sinceMs + step.policy.moveCooldownMs;
    if (moved(pair)) {
      if (inCooldown)
        throw new RuleViolation("drain", `vserver ${pair.after.id} drained within its cooldown`);
      continue;
    }
    const code = pair.after.blocked?.code;
    if (code === "cooldown" && inCooldown) continue;
    if ((code === "no-capacity" || code === "no-node") && !slotLeft(step)) continue;
    throw new RuleViolation("drain", `vserver ${pair.after.id} left on draining ${pair.home.id} (${code})`);
  }
}

/** A vserver without a node gets one, unless no slot is left. */
function place(step: PlanStep): void {
  for (const pair of pairs(step)) if (pair.home === undefined) servedOrNoRoom(step, pair, "place");
}

/** Whether the rules wanted to give this vserver a new node in this step. */
function wanted(pair: Pair, step: PlanStep): boolean {
  const home = pair.home;
  if (home === undefined) return true;
  if (home.operatorState === "draining")
    return !home.alive || step.nowMs >= pair.before.placement.sinceMs + step.policy.moveCooldownMs;
  return !home.alive && !pair.before.pinned;
}

/**
 * No vserver that wanted a slot and got none comes before one that got a slot: higher priority
 * first, and at equal priority one that is down (no node, or a dead one) before one still running.
 */
function priority(step: PlanStep): void {
  const rank = (pair: Pair) => 2 * pair.before.priority + (pair.home?.alive === true ? 0 : 1);
  let lowestServed = Number.POSITIVE_INFINITY;
  let highestLeft = Number.NEGATIVE_INFINITY;
  for (const pair of pairs(step)) {
    if (!wanted(pair, step)) continue;
    if (pair.after.placement.node !== null && moved(pair)) lowestServed = Math.min(lowestServed, rank(pair));
    else highestLeft = Math.max(highestLeft, rank(pair));
  }
  if (highestLeft > lowestServed)
    throw new RuleViolation("priority", `rank ${highestLeft} left without a slot, ${lowestServed} got one`);
}

/**
 * Each placement, in the order the plan made them, went to a node with the fewest vservers so far
 * from the same origin (spreading one node's vservers), and among those to one with the smallest
 * share of its capacity in use (least loaded).
 */
function leastLoaded(step: PlanStep): void {
  const used = vserverCounts(step.before);
  const received = new Map<string, number>();
  const open = () =>
    step.before.nodes.filter((n) => mayReceive(n, step) && (used.get(n.id) ?? 0) < n.vserversMax);
  for (const action of step.actions) {
    if (action.kind !== "placement" || action.to === null) continue;
    const fromOrigin = (node: ClusterNode) =>
      action.from === null ? 0 : (received.get(`${action.from}>${node.id}`) ?? 0);
    const share = (node: ClusterNode) => ((used.get(node.id) ?? 0) + 1) / node.vserversMax;
    const candidates = open();
    const chosen = candidates.find((node) => node.id === action.to);
    if (chosen === undefined)
      throw new RuleViolation("least-loaded", `${action.vserverId} sent to a full node`);
    const fewest = Math.min(...candidates.map(fromOrigin));
    const lightest = Math.min(...candidates.filter((n) => fromOrigin(n) === fewest).map(share));
    if (fromOrigin(chosen) !== fewest || share(chosen) !== lightest)
      throw new RuleViolation(
        "least-loaded",
        `${action.vserverId} sent to ${chosen.id}, not a least-loaded node`,
      );
    used.set(chosen.id, (used.get(chosen.id) ?? 0) + 1);
    received.set(`${action.from}>${chosen.id}`, fromOrigin(chosen) + 1);
  }
}

/**
 * One node's vservers are spread: a node that received k of them means every node that still has a
 * free slot received at least k - 1.
 */
function spread(step: PlanStep): void {
  const received = new Map<NodeId, Map<NodeId, number>>();
  for (const pair of pairs(step)) {
    const to = pair.after.placement.node;
    if (pair.home === undefined || to === null || !moved(pair)) continue;
    const byTarget = received.get(pair.home.id) ?? new Map<NodeId, number>();
    byTarget.set(to, (byTarget.get(to) ?? 0) + 1);
    received.set(pair.home.id, byTarget);
  }
  const counts = vserverCounts(step.after);
  const roomy = step.after.nodes.filter(
    (n) => mayReceive(n, step) && (counts.get(n.id) ?? 0) < n.vserversMax,
  );
  for (const [origin, byTarget] of received) {
    const most = Math.max(...byTarget.values());
    for (const node of roomy)
      if ((byTarget.get(node.id) ?? 0) < most - 1)
        throw new RuleViolation(
          "spread",
          `${origin}: one node got ${most}, ${node.id} has room and got fewer`,
        );
  }
}

/** Every vserver's blocked reason says what holds it, and only when something does. */
function blocked(step: PlanStep): void {
  const noRoom = step.after.nodes.some((node) => mayReceive(node, step)) ? "no-capacity" : "no-node";
  for (const vserver of step.after.vservers) {
    const node = nodeOf(step, vserver.placement.node);
    const code = vserver.blocked?.code;
    let expected: readonly (string | undefined)[];
    if (node === undefined) expected = [noRoom];
    else if (node.operatorState === "draining") expected = node.alive ? ["cooldown", noRoom] : [noRoom];
    else if (!node.alive) expected = ["pinned-node-dead"];
    else expected = [undefined];
    if (!expected.includes(code))
      throw new RuleViolation(
        "blocked",
        `vserver ${vserver.id} on ${node?.id ?? "no node"} is blocked ${code}`,
      );
  }
}

/** After the plan is applied, planning again at the same time changes nothing. */
function idempotent(step: PlanStep): void {
  const again = plan(step.after, step.nowMs, step.policy);
  if (again.length > 0)
    throw new RuleViolation("idempotent", `${again.length} more actions, first ${JSON.stringify(again[0])}`);
}

/** Every rule, by name. */
export const PLANNER_RULES = {
  generation,
  targets,
  failover,
  pinned,
  noFailback,
  drain,
  place,
  priority,
  leastLoaded,
  spread,
  blocked,
  idempotent,
} as const satisfies Record<string, (step: PlanStep) => void>;

export type PlannerRule = keyof typeof PLANNER_RULES;

export function checkAllRules(step: PlanStep): void {
  for (const check of Object.values(PLANNER_RULES)) check(step);
}
