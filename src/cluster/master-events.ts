/**
 * The events of the master's decisions, from the plan it wrote and the state it planned on (pure):
 * each placement change that landed is a failover, a move or a placement, with the reason in words;
 * each new blocked reason is a blocked event; a node seen to join or lose its lease is a node event.
 */
import { describeBlocked } from "./blocked-text.ts";
import type { EventInput } from "./event-record.ts";
import type { ClusterState, PlanAction, Vserver } from "./model.ts";

type Placement = Extract<PlanAction, { kind: "placement" }>;

function missingReach(state: ClusterState, vserver: Vserver | undefined, nodeId: string | null): string[] {
  const node = state.nodes.find((n) => n.id === nodeId);
  if (vserver === undefined || node === undefined) return [];
  return (vserver.requires ?? []).filter((label) => !node.reaches.includes(label));
}

function placementEvent(state: ClusterState, action: Placement, by: string, atMs: number): EventInput {
  const { vserverId: id, from, to, generation } = action;
  const where = to === null ? "no node can take it: it is down until one can" : `it goes to ${to}`;
  const details = { from, to, generation };
  const base = { atMs, subject: id, by, details };
  switch (action.cause) {
    case "failover":
      return {
        ...base,
        kind: "failover",
        cause: "node-dead",
        reason: `node ${from} lost its lease; ${where}`,
      };
    case "drain":
      return { ...base, kind: "move", cause: "drain", reason: `node ${from} is draining; ${where}` };
    case "unreachable": {
      const vserver = state.vservers.find((v) => v.id === id);
      const missing = missingReach(state, vserver, from);
      const lost = missing.length === 0 ? "something it needs" : missing.join(", ");
      return {
        ...base,
        kind: "move",
        cause: "unreachable",
        reason: `node ${from} no longer reaches ${lost}; ${where}`,
      };
    }
    case "place":
      return {
        ...base,
        kind: "place",
        cause: generation === 1 ? "new" : "no-node-before",
        reason: to === null ? "no node can take it" : `placed on ${to}, the least loaded filer node`,
      };
  }
}

/**
 * The events of `actions` (planned on `state`) whose vservers' placements were written, so an event
 * says what the cluster now wants, never what a lost compare-and-swap only proposed.
 */
export function planEvents(
  state: ClusterState,
  actions: readonly PlanAction[],
  written: ReadonlySet<string>,
  by: string,
  atMs: number,
): EventInput[] {
  const events: EventInput[] = [];
  const before = new Map(state.vservers.map((v) => [v.id, v]));
  for (const action of actions) {
    if (!written.has(action.vserverId)) continue;
    if (action.kind === "placement") {
      events.push(placementEvent(state, action, by, atMs));
      continue;
    }
    const blocked = action.blocked;
    // A reason that only changed its details (a later cooldown end) is not news; a cleared one is
    // followed by the placement event that cleared it.
    if (blocked === null || before.get(action.vserverId)?.blocked?.code === blocked.code) continue;
    events.push({
      atMs,
      kind: "blocked",
      cause: blocked.code,
      subject: action.vserverId,
      by,
      reason: describeBlocked(blocked),
    });
  }
  return events;
}

/** A node the master saw join, or lose its lease. */
export function nodeEvent(nodeId: string, alive: boolean, by: string, atMs: number): EventInput {
  return alive
    ? { atMs, kind: "node", cause: "joined", subject: nodeId, by, reason: `node ${nodeId} joined` }
    : {
        atMs,
        kind: "node",
        cause: "lease-lost",
        subject: nodeId,
        by,
        reason: `node ${nodeId} lost its lease: its vservers fail over unless pinned`,
      };
}
