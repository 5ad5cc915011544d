/**
 * Applies a plan to the state it was made from: what the master's desired state becomes once every
 * action is written, and what the simulator and the tests plan on next.
 */
import { assert } from "../util/assert.ts";
import type { ClusterNode, ClusterState, NodeId, PlanAction, Vserver, VserverId } from "./model.ts";

type PlacementAction = Extract<PlanAction, { kind: "placement" }>;
type BlockedAction = Extract<PlanAction, { kind: "blocked" }>;

function applyPlacement(
  vserver: Vserver,
  action: PlacementAction,
  nodes: ReadonlyMap<NodeId, ClusterNode>,
  nowMs: number,
): Vserver {
  assert(
    action.from === vserver.placement.node,
    `vserver ${vserver.id}: a placement change from a node it is not on`,
  );
  assert(
    action.generation > vserver.placement.generation,
    `vserver ${vserver.id}: placement generation goes back`,
  );
  assert(action.generation === vserver.placement.generation + 1, `vserver ${vserver.id}: generation skips`);
  if (action.to !== null) {
    const target = nodes.get(action.to);
    assert(target !== undefined, `vserver ${vserver.id}: placed on unknown node ${action.to}`);
    assert(target.alive, `vserver ${vserver.id}: placed on dead node ${action.to}`);
  }
  return { ...vserver, placement: { node: action.to, generation: action.generation, sinceMs: nowMs } };
}

/**
 * The state after `actions` (from `plan(state, nowMs)`), with every moved vserver's placement dated
 * `nowMs`. Nodes are unchanged. Asserts that the actions fit the state: one placement change and one
 * blocked change per vserver at most, generations one up, targets alive.
 */
export function applyPlan(state: ClusterState, actions: readonly PlanAction[], nowMs: number): ClusterState {
  const placements = new Map<VserverId, PlacementAction>();
  const blocked = new Map<VserverId, BlockedAction>();
  for (const action of actions) {
    const seen =
      action.kind === "placement" ? placements.has(action.vserverId) : blocked.has(action.vserverId);
    assert(!seen, `vserver ${action.vserverId}: two ${action.kind} actions in one plan`);
    if (action.kind === "placement") placements.set(action.vserverId, action);
    else blocked.set(action.vserverId, action);
  }
  const nodes = new Map(state.nodes.map((node) => [node.id, node]));
  let applied = 0;
  const vservers = state.vservers.map((vserver) => {
    let next = vserver;
    const placement = placements.get(vserver.id);
    if (placement !== undefined) next = applyPlacement(next, placement, nodes, nowMs);
    const reason = blocked.get(vserver.id);
    if (reason !== undefined) next = { ...next, blocked: reason.blocked };
    if (placement !== undefined || reason !== undefined) applied++;
    return next;
  });
  assert(
    applied === new Set([...placements.keys(), ...blocked.keys()]).size,
    "an action names an unknown vserver",
  );
  return { nodes: state.nodes, vservers };
}
