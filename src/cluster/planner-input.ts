/**
 * Checks the state handed to the planner before it plans anything: a malformed state is a bug in
 * whoever assembled it, and planning on it would spread the damage into the desired state.
 */
import {
  type ClusterNode,
  type ClusterState,
  ClusterStateError,
  LABEL_CHARS_MAX,
  NODE_REACHES_MAX,
  NODES_MAX,
  type NodeId,
  type PlannerPolicy,
  VSERVER_VIPS_MAX,
  VSERVER_VIPS_MIN,
  VSERVER_VOLUMES_MAX,
  VSERVERS_MAX,
  type Vserver,
  type VserverId,
} from "./model.ts";

const OPERATOR_STATES: ReadonlySet<string> = new Set(["enabled", "disabled", "draining"]);
const ROLES: ReadonlySet<string> = new Set(["filer", "storage"]);

function invalid(subject: string, message: string): ClusterStateError {
  return new ClusterStateError("INVALID", subject, message);
}

function checkLabel(value: unknown, subject: string, what: string): void {
  if (typeof value !== "string" || value.length === 0 || value.length > LABEL_CHARS_MAX)
    throw invalid(subject, `${what} must be a string of 1 to ${LABEL_CHARS_MAX} characters`);
}

function checkCount(value: number, subject: string, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0)
    throw invalid(subject, `${what} must be a count, got ${value}`);
}

/** A time must be on the caller's clock and not ahead of it: a future time means a clock went back. */
function checkTime(value: number, nowMs: number, subject: string, what: string): void {
  if (!Number.isFinite(value)) throw invalid(subject, `${what} must be a time in ms, got ${value}`);
  if (value > nowMs) throw invalid(subject, `${what} ${value} is after now (${nowMs})`);
}

function checkLabels(values: readonly string[], max: number, subject: string, what: string): void {
  if (values.length > max) throw invalid(subject, `more than ${max} ${what}`);
  for (const value of values) checkLabel(value, subject, what);
}

function checkNode(node: ClusterNode, nowMs: number): void {
  checkLabel(node.id, "node", "id");
  const subject = `node ${node.id}`;
  for (const role of node.roles) if (!ROLES.has(role)) throw invalid(subject, `unknown role ${role}`);
  if (!OPERATOR_STATES.has(node.operatorState))
    throw invalid(subject, `unknown operator state ${node.operatorState}`);
  checkTime(node.sinceMs, nowMs, subject, "sinceMs");
  checkCount(node.vserversMax, subject, "vserversMax");
  // Bounded so the planner's load comparisons stay exact integers.
  if (node.vserversMax > VSERVERS_MAX) throw invalid(subject, `vserversMax is above ${VSERVERS_MAX}`);
  if (!(Number.isFinite(node.load.loadPerCore) && node.load.loadPerCore >= 0))
    throw invalid(subject, `loadPerCore must be a finite non-negative number, got ${node.load.loadPerCore}`);
  checkCount(node.load.memoryFreeBytes, subject, "memoryFreeBytes");
  checkLabels(node.reaches, NODE_REACHES_MAX, subject, "reaches");
}

function checkVserver(vserver: Vserver, nodes: ReadonlyMap<NodeId, ClusterNode>, nowMs: number): void {
  checkLabel(vserver.id, "vserver", "id");
  const subject = `vserver ${vserver.id}`;
  checkLabel(vserver.name, subject, "name");
  if (!Number.isSafeInteger(vserver.priority))
    throw invalid(subject, `priority must be an integer, got ${vserver.priority}`);
  if (vserver.vips.length < VSERVER_VIPS_MIN)
    throw invalid(subject, `needs at least ${VSERVER_VIPS_MIN} VIPs, has ${vserver.vips.length}`);
  checkLabels(vserver.vips, VSERVER_VIPS_MAX, subject, "VIPs");
  if (vserver.volumes.length === 0) throw invalid(subject, "needs at least one volume");
  checkLabels(vserver.volumes, VSERVER_VOLUMES_MAX, subject, "volumes");
  const { node, generation, sinceMs } = vserver.placement;
  checkCount(generation, subject, "placement generation");
  checkTime(sinceMs, nowMs, subject, "placement sinceMs");
  if (node !== null && !nodes.has(node))
    throw new ClusterStateError(
      "UNKNOWN_NODE",
      subject,
      `placed on node ${node}, which the state does not have`,
    );
}

/** Adds `key` to `seen`, or throws DUPLICATE naming both owners. */
function claim(seen: Map<string, Vserver>, key: string, owner: Vserver, what: string): void {
  const previous = seen.get(key);
  const subject = (): string => `vserver ${owner.id}`;
  if (previous === owner) throw new ClusterStateError("DUPLICATE", subject(), `lists ${what} ${key} twice`);
  if (previous !== undefined)
    throw new ClusterStateError(
      "DUPLICATE",
      subject(),
      `${what} ${key} is also used by vserver ${previous.id}`,
    );
  seen.set(key, owner);
}

/** The state's nodes and vservers by id: the planner needs them anyway. */
export interface ClusterIndex {
  readonly nodes: ReadonlyMap<NodeId, ClusterNode>;
  readonly vservers: ReadonlyMap<VserverId, Vserver>;
}

/** Throws ClusterStateError for the first thing wrong with `state` at `nowMs`. */
export function validateClusterState(state: ClusterState, nowMs: number): ClusterIndex {
  if (!Number.isFinite(nowMs)) throw invalid("now", `must be a time in ms, got ${nowMs}`);
  if (state.nodes.length > NODES_MAX)
    throw new ClusterStateError("TOO_LARGE", "nodes", `${state.nodes.length} nodes; at most ${NODES_MAX}`);
  if (state.vservers.length > VSERVERS_MAX)
    throw new ClusterStateError(
      "TOO_LARGE",
      "vservers",
      `${state.vservers.length} vservers; at most ${VSERVERS_MAX}`,
    );
  const nodes = new Map<NodeId, ClusterNode>();
  for (const node of state.nodes) {
    checkNode(node, nowMs);
    if (nodes.has(node.id))
      throw new ClusterStateError("DUPLICATE", `node ${node.id}`, "two nodes have this id");
    nodes.set(node.id, node);
  }
  const vservers = new Map<VserverId, Vserver>();
  const names = new Map<string, Vserver>();
  const vips = new Map<string, Vserver>();
  const volumes = new Map<string, Vserver>();
  for (const vserver of state.vservers) {
    checkVserver(vserver, nodes, nowMs);
    if (vservers.has(vserver.id))
      throw new ClusterStateError("DUPLICATE", `vserver ${vserver.id}`, "two vservers have this id");
    vservers.set(vserver.id, vserver);
    claim(names, vserver.name, vserver, "name");
    for (const vip of vserver.vips) claim(vips, vip, vserver, "VIP");
    for (const volume of vserver.volumes) claim(volumes, volume, vserver, "volume");
  }
  return { nodes, vservers };
}

/** Throws RangeError for a policy that cannot be meant (a negative or infinite time). */
export function validatePolicy(policy: PlannerPolicy): void {
  for (const [key, value] of Object.entries(policy)) {
    if (typeof value !== "number" || !Number.isFinite(value) || value < 0)
      throw new RangeError(`planner policy ${key} must be a finite non-negative number of ms, got ${value}`);
  }
}
