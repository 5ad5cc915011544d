/**
 * The planner: the cluster's state in, the placement changes it needs out. Pure (no I/O, no clock:
 * the caller passes the time), so the master can run it on every change and the simulator can run it
 * thousands of times from a seed.
 *
 * Rules:
 * - a vserver without a node goes to the least-loaded node that may take it (planner-targets.ts);
 * - a dead node's vservers move, highest priority first, spread over several nodes; a pinned one
 *   stays down on its node, blocked "pinned-node-dead", until the node returns or an operator moves it;
 * - a draining node's vservers move off, pinned ones too, each at most once per cooldown while
 *   the node is alive;
 * - a vserver goes only to a node that reaches all it requires (its VIPs' client subnets, the storage
 *   servers of its volumes); one whose live node lost any of them moves to a node that reaches them
 *   all, at once (its clients or its writes are stalled now), unless it is pinned or no such node has
 *   a slot: then it stays, blocked "unreachable";
 * - nothing else moves: a node that comes back gets nothing back (no failback), a disabled node keeps
 *   what it runs and receives nothing new, and a node that came back from the dead receives nothing
 *   until it has stayed alive for the settle time;
 * - with no slot anywhere a vserver waits without a node, blocked "no-node" or "no-capacity"; no
 *   running vserver is ever stopped to make room for a higher-priority one;
 * - every change of node raises the placement's generation by one.
 */

import { assert } from "../util/assert.ts";
import type {
  Blocked,
  ClusterNode,
  ClusterState,
  NodeId,
  PlacementCause,
  PlanAction,
  PlannerPolicy,
  Vserver,
} from "./model.ts";
import { assertPlan } from "./planner-check.ts";
import { validateClusterState, validatePolicy } from "./planner-input.ts";
import { missingReach, TargetPool } from "./planner-targets.ts";

export { ClusterStateError } from "./model.ts";
export { applyPlan } from "./planner-apply.ts";
export { isSettled, isTarget } from "./planner-targets.ts";

/**
 * Settle: a node back from the dead must hold its lease for 30 s (many lease lifetimes) before it
 * receives vservers, so a node in a crash loop never collects any. Cooldown: a vserver moved less
 * than 30 s ago is not drained again yet, so its clients, which have just reconnected, are not
 * stalled twice in a row; a dead node is never waited for.
 */
export const PLANNER_POLICY_DEFAULT: PlannerPolicy = Object.freeze({
  nodeSettleMs: 30_000,
  moveCooldownMs: 30_000,
});

/** Why a vserver must change node. */
interface Move {
  readonly cause: PlacementCause;
  /** It serves nobody now (no node, or a dead one): it goes before a served one of equal priority. */
  readonly down: boolean;
  /** For "unreachable": what its node lacks. */
  readonly missing?: readonly string[];
}

interface Mover extends Move {
  readonly vserver: Vserver;
  /** Its index in the state's vservers. */
  readonly position: number;
}

/** What the rules say about one vserver: it moves, or it stays (blocked or not). */
function assess(
  vserver: Vserver,
  nodes: ReadonlyMap<NodeId, ClusterNode>,
  nowMs: number,
  policy: PlannerPolicy,
): Move | Blocked | null {
  const nodeId = vserver.placement.node;
  if (nodeId === null) return { cause: "place", down: true };
  const node = nodes.get(nodeId)!;
  if (node.operatorState === "draining") {
    // A dead draining node's pinned vserver still leaves: the operator asked for the node to be emptied.
    if (!node.alive) return { cause: vserver.pinned ? "drain" : "failover", down: true };
    const untilMs = vserver.placement.sinceMs + policy.moveCooldownMs;
    if (nowMs < untilMs) return { code: "cooldown", untilMs };
    return { cause: "drain", down: false };
  }
  if (node.alive) {
    const missing = missingReach(vserver, node);
    if (missing.length === 0) return null;
    if (vserver.pinned) return { code: "unreachable", missing };
    return { cause: "unreachable", down: true, missing };
  }
  if (vserver.pinned) return { code: "pinned-node-dead", node: nodeId };
  return { cause: "failover", down: true };
}

/** Priority first (higher first); then down before served; then id, so plans are deterministic. */
function byUrgency(a: Mover, b: Mover): number {
  if (a.vserver.priority !== b.vserver.priority) return b.vserver.priority - a.vserver.priority;
  if (a.down !== b.down) return a.down ? -1 : 1;
  return a.vserver.id < b.vserver.id ? -1 : a.vserver.id > b.vserver.id ? 1 : 0;
}

function sameBlocked(a: Blocked | null, b: Blocked | null): boolean {
  if (a === null || b === null) return a === b;
  if (a.code !== b.code) return false;
  if (a.code === "pinned-node-dead" && b.code === "pinned-node-dead") return a.node === b.node;
  if (a.code === "cooldown" && b.code === "cooldown") return a.untilMs === b.untilMs;
  if (a.code === "unreachable" && b.code === "unreachable") return a.missing.join() === b.missing.join();
  return true;
}

function placement(vserver: Vserver, to: NodeId | null, cause: PlacementCause): PlanAction {
  return {
    kind: "placement",
    vserverId: vserver.id,
    from: vserver.placement.node,
    to,
    generation: vserver.placement.generation + 1,
    cause,
  };
}

/**
 * The changes `state` needs at `nowMs`: placement changes in the order they were decided (highest
 * priority first), then every change of a vserver's `blocked` reason. Empty when nothing needs to
 * change, so planning again on the applied result gives nothing. Throws ClusterStateError for a
 * malformed state, RangeError for a bad policy.
 */
export function plan(state: ClusterState, nowMs: number, policy = PLANNER_POLICY_DEFAULT): PlanAction[] {
  validatePolicy(policy);
  const index = validateClusterState(state, nowMs);
  const pool = new TargetPool(state, nowMs, policy);
  // Each vserver's blocked reason after this plan, by its position in state.vservers.
  const blocked: (Blocked | null)[] = [];
  const movers: Mover[] = [];
  state.vservers.forEach((vserver, position) => {
    const verdict = assess(vserver, index.nodes, nowMs, policy);
    if (verdict !== null && "cause" in verdict) movers.push({ ...verdict, vserver, position });
    else blocked[position] = verdict;
  });
  movers.sort(byUrgency);
  const actions: PlanAction[] = [];
  for (const { vserver, cause, position, missing } of movers) {
    const to = pool.take(vserver.placement.node, vserver.requires ?? []);
    if (to !== undefined) {
      actions.push(placement(vserver, to, cause));
      blocked[position] = null;
      continue;
    }
    if (cause === "unreachable") {
      // Served badly beats not served: it stays where it is until a node that reaches it all opens.
      blocked[position] = { code: "unreachable", missing: missing ?? [] };
      continue;
    }
    blocked[position] = pool.targetCount === 0 ? { code: "no-node" } : { code: "no-capacity" };
    // Off the dead node even with nowhere to go: it must not stay tied to a node that serves
    // nothing, and will take the first slot that opens anywhere.
    if (cause === "failover") actions.push(placement(vserver, null, cause));
  }
  state.vservers.forEach((vserver, position) => {
    const next = blocked[position];
    assert(next !== undefined, `vserver ${vserver.id} was not assessed`);
    if (!sameBlocked(vserver.blocked, next))
      actions.push({ kind: "blocked", vserverId: vserver.id, blocked: next });
  });
  assertPlan(state, index, actions, nowMs, policy);
  return actions;
}
