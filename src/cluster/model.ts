/**
 * The cluster as the planner sees it: nodes, vservers and their placements, and the changes the
 * planner proposes. Plain data (strings, numbers, booleans, arrays, null) so the master can read it
 * from the coordination store, hand it to the pure planner, and the simulator can build it from a
 * seed. Times are milliseconds of one logical clock that the caller passes in with the state.
 */

export type NodeId = string;
export type VserverId = string;

/** A node runs vservers only with the filer role; storage-only nodes never receive one. */
export type NodeRole = "filer" | "storage";

/**
 * What the operator asked of a node (`flotilla node enable|disable|drain`):
 * - enabled: runs what it has and receives new vservers;
 * - disabled: keeps what it has, receives nothing new;
 * - draining: receives nothing new, and every vserver on it is moved off, pinned ones included
 *   (pinning is about failures; a drain is the operator's explicit wish to empty the node).
 */
export type OperatorState = "enabled" | "disabled" | "draining";

/** What the node last published under its lease; measured, so only a tie-breaker between equal nodes. */
export interface NodeLoad {
  /** One-minute load average divided by the node's core count (1.0 = every core busy). */
  readonly loadPerCore: number;
  readonly memoryFreeBytes: number;
}

export interface ClusterNode {
  readonly id: NodeId;
  readonly roles: readonly NodeRole[];
  /** Its membership lease is present. */
  readonly alive: boolean;
  /** When `alive` took its current value: the lease appeared (or the node joined), or was found gone. */
  readonly sinceMs: number;
  /**
   * The node has been seen dead at least once. A node that comes back from the dead must stay alive
   * for the policy's settle time before it receives vservers, so a node that keeps crashing does not
   * keep collecting vservers only to drop them again. A node that never died needs no settling, so a
   * fresh cluster places its vservers at once.
   */
  readonly hasDied: boolean;
  readonly operatorState: OperatorState;
  /** Capacity: how many vservers the node may run at once (0: none). */
  readonly vserversMax: number;
  readonly load: NodeLoad;
  /**
   * What the node reaches, as published under its lease: "subnet:<cidr>" for each client subnet it
   * has a good port on, "storage:<id>" for each storage server it can connect to. A vserver goes only
   * where every one of its `requires` is reached.
   */
  readonly reaches: readonly string[];
}

export interface Placement {
  /** The node the vserver should run on; null while it has none (new, or nowhere to go). */
  readonly node: NodeId | null;
  /**
   * Raised by one on every change of `node`: the agent that starts the vserver and the master that
   * writes the next change compare it, so a stale decision is never acted on. Never goes back.
   */
  readonly generation: number;
  /** When `node` last changed: moves within the policy's cooldown wait (except off a dead node). */
  readonly sinceMs: number;
}

/**
 * Why a vserver is not where the rules want it: down (no live node) or, for a draining node's
 * vserver, not yet moved off. `status` shows it; the planner rewrites it whenever it changes.
 */
export type Blocked =
  /** Pinned, and its node is dead: it is not failed over; it runs again when the node comes back or an operator moves it. */
  | { readonly code: "pinned-node-dead"; readonly node: NodeId }
  /** No node can take a vserver: none is alive, enabled, settled and a filer. */
  | { readonly code: "no-node" }
  /** Such nodes exist, but every one runs as many vservers as it may. */
  | { readonly code: "no-capacity" }
  /** On a draining node, but moved less than the cooldown ago: it moves at `untilMs`. */
  | { readonly code: "cooldown"; readonly untilMs: number }
  /**
   * Its node does not reach `missing` (a client subnet, a storage server), and it stays: it is pinned,
   * or no node that reaches all it requires can take it.
   */
  | { readonly code: "unreachable"; readonly missing: readonly string[] };

export type BlockedCode = Blocked["code"];

export interface Vserver {
  readonly id: VserverId;
  /** Unique, for operators. */
  readonly name: string;
  /** Higher first: when slots are short, higher-priority vservers are placed before lower ones. */
  readonly priority: number;
  /** Never moved because its node failed (it stays down instead); an operator drain still moves it. */
  readonly pinned: boolean;
  /** Its virtual IPs, at least two; no VIP belongs to two vservers. */
  readonly vips: readonly string[];
  /** Its volume ids, at least one; no volume belongs to two vservers. */
  readonly volumes: readonly string[];
  /**
   * Reach labels (see ClusterNode.reaches) its node must have: the client subnets of its VIPs and the
   * storage servers holding its volumes, as far as some live node reaches them. None: anywhere.
   */
  readonly requires?: readonly string[];
  readonly placement: Placement;
  readonly blocked: Blocked | null;
}

export interface ClusterState {
  readonly nodes: readonly ClusterNode[];
  readonly vservers: readonly Vserver[];
}

/**
 * Why a placement changes:
 * - place: the vserver had no node (new, or displaced earlier with nowhere to go);
 * - failover: its node is dead;
 * - drain: its node is draining;
 * - unreachable: its node is alive but lost a client subnet or a storage server it needs.
 */
export type PlacementCause = "place" | "failover" | "drain" | "unreachable";

/** One change the planner proposes; the master writes each to the desired state. */
export type PlanAction =
  | {
      readonly kind: "placement";
      readonly vserverId: VserverId;
      /** The node it leaves (null if it had none). */
      readonly from: NodeId | null;
      /** The node it goes to; null when its node died and no other can take it (it goes down). */
      readonly to: NodeId | null;
      /** The placement's generation after the change: the previous one plus one. */
      readonly generation: number;
      readonly cause: PlacementCause;
    }
  | {
      readonly kind: "blocked";
      readonly vserverId: VserverId;
      /** The new reason, or null when the vserver is no longer blocked. */
      readonly blocked: Blocked | null;
    };

/** The planner's anti-flapping settings. */
export interface PlannerPolicy {
  /** How long a node that came back from the dead must stay alive before it receives vservers. */
  readonly nodeSettleMs: number;
  /** How long after a move a vserver waits before it is moved again, unless its node dies. */
  readonly moveCooldownMs: number;
}

// Bounds on what the planner accepts: the scale (1,000 nodes, 10,000 vservers) with room.
export const NODES_MAX = 10_000;
export const VSERVERS_MAX = 100_000;
export const VSERVER_VIPS_MIN = 2;
export const VSERVER_VIPS_MAX = 64;
export const VSERVER_VOLUMES_MAX = 64;
export const NODE_REACHES_MAX = 256;
/** Ids, names, VIPs, volume ids and reach labels. */
export const LABEL_CHARS_MAX = 255;

export type ClusterStateErrorCode =
  /** Two nodes, vservers or names share an id; or a VIP or volume belongs to two vservers. */
  | "DUPLICATE"
  /** A placement names a node the state does not have. */
  | "UNKNOWN_NODE"
  /** A field is out of its range or of the wrong form. */
  | "INVALID"
  /** More nodes or vservers than the planner accepts. */
  | "TOO_LARGE";

/** The state handed to the planner is malformed: a bug in whoever assembled it, named precisely. */
export class ClusterStateError extends Error {
  override name = "ClusterStateError";
  readonly code: ClusterStateErrorCode;
  /** What is wrong, e.g. "vserver vs1" or "node n2". */
  readonly subject: string;
  constructor(code: ClusterStateErrorCode, subject: string, message: string) {
    super(`${subject}: ${message}`);
    this.code = code;
    this.subject = subject;
  }
}
