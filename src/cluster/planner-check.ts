/**
 * What a plan must never do, asserted on every plan before it leaves the planner: a plan that breaks
 * one of these would put a vserver on a dead node, on two nodes, or behind an older decision.
 */
import { assert } from "../util/assert.ts";
import type {
  ClusterNode,
  ClusterState,
  NodeId,
  PlanAction,
  PlannerPolicy,
  Vserver,
  VserverId,
} from "./model.ts";
import type { ClusterIndex } from "./planner-input.ts";
import { isTarget, missingReach } from "./planner-targets.ts";

type PlacementAction = Extract<PlanAction, { kind: "placement" }>;

/** Asserts that the rules let `vserver` leave `from` for `cause`. */
function checkLeaving(vserver: Vserver, from: ClusterNode, cause: PlacementAction["cause"]): void {
  const subject = `vserver ${vserver.id}`;
  if (cause === "unreachable") {
    assert(from.alive, `${subject}: moved as unreachable off dead node ${from.id}`);
    assert(!vserver.pinned, `${subject}: pinned, yet moved for reach`);
    assert(missingReach(vserver, from).length > 0, `${subject}: moved for reach ${from.id} has`);
    return;
  }
  assert(
    from.operatorState === "draining" || !from.alive,
    `${subject} moved off live node ${from.id} (failback?)`,
  );
  if (cause === "failover") {
    assert(!from.alive, `${subject}: failover off live node ${from.id}`);
    assert(!vserver.pinned, `${subject}: pinned, yet failed over`);
  }
  if (vserver.pinned)
    assert(from.operatorState === "draining", `${subject}: pinned, moved off a node not draining`);
}

function checkPlacement(
  vserver: Vserver,
  action: PlacementAction,
  nodes: ReadonlyMap<NodeId, ClusterNode>,
  nowMs: number,
  policy: PlannerPolicy,
): void {
  const subject = `vserver ${vserver.id}`;
  assert(action.generation > vserver.placement.generation, `${subject}: placement generation goes back`);
  assert(action.generation === vserver.placement.generation + 1, `${subject}: placement generation skips`);
  assert(action.from === vserver.placement.node, `${subject}: moved from a node it is not on`);
  assert(action.from !== action.to, `${subject}: moved to the node it is on`);
  if (action.from === null) assert(action.cause === "place", `${subject}: placed with cause ${action.cause}`);
  else checkLeaving(vserver, nodes.get(action.from)!, action.cause);
  if (action.to === null) {
    assert(action.cause === "failover", `${subject}: unplaced with cause ${action.cause}`);
    return;
  }
  const target = nodes.get(action.to);
  assert(target !== undefined, `${subject}: placed on unknown node ${action.to}`);
  assert(target.alive, `${subject}: placed on dead node ${target.id}`);
  assert(
    isTarget(target, nowMs, policy),
    `${subject}: placed on ${target.id}, which may not receive vservers`,
  );
  const missing = missingReach(vserver, target);
  assert(
    missing.length === 0,
    `${subject}: placed on ${target.id}, which does not reach ${missing.join(", ")}`,
  );
}

/**
 * Asserts the plan's invariants: each vserver in at most one placement change (so on at most one
 * node); generations one up; targets alive, enabled, settled filers within capacity; nothing moved
 * off a live node that is not draining; pinned vservers never failed over; and no unpinned vserver
 * left on a dead node.
 */
export function assertPlan(
  state: ClusterState,
  { nodes, vservers }: ClusterIndex,
  actions: readonly PlanAction[],
  nowMs: number,
  policy: PlannerPolicy,
): void {
  const placed = new Set<VserverId>();
  const received = new Map<NodeId, number>();
  for (const action of actions) {
    if (action.kind !== "placement") continue;
    const vserver = vservers.get(action.vserverId);
    assert(vserver !== undefined, `plan moves unknown vserver ${action.vserverId}`);
    assert(!placed.has(vserver.id), `vserver ${vserver.id} placed twice in one plan`);
    placed.add(vserver.id);
    checkPlacement(vserver, action, nodes, nowMs, policy);
    if (action.to !== null) received.set(action.to, (received.get(action.to) ?? 0) + 1);
  }
  const used = new Map<NodeId, number>();
  for (const vserver of state.vservers) {
    const node = vserver.placement.node;
    if (node !== null) used.set(node, (used.get(node) ?? 0) + 1);
    if (node === null || vserver.pinned || placed.has(vserver.id)) continue;
    assert(nodes.get(node)!.alive, `unpinned vserver ${vserver.id} left on dead node ${node}`);
  }
  for (const [nodeId, count] of received) {
    const total = (used.get(nodeId) ?? 0) + count;
    assert(
      total <= nodes.get(nodeId)!.vserversMax,
      `node ${nodeId} given ${total} vservers, above its capacity`,
    );
  }
}
