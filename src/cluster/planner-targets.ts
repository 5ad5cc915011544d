/**
 * The nodes that may receive vservers in one plan, and the choice among them. Each placement is
 * counted as it is made, so one plan spreads its vservers instead of piling them on the node that
 * looked least loaded at the start. A heap keeps each choice O(log nodes), so even placing 100,000
 * new vservers on 10,000 nodes (the model's bounds) stays fast.
 */
import type { ClusterNode, ClusterState, NodeId, PlannerPolicy, Vserver } from "./model.ts";
import { MinHeap } from "./planner-heap.ts";

/**
 * Whether a live node has been alive long enough to receive vservers. Only a node that has died
 * settles: one that never died (a fresh cluster, a node just added) is trusted at once.
 */
export function isSettled(node: ClusterNode, nowMs: number, policy: PlannerPolicy): boolean {
  return node.alive && (!node.hasDied || nowMs - node.sinceMs >= policy.nodeSettleMs);
}

/** Whether the node may receive a vserver now (capacity aside). */
export function isTarget(node: ClusterNode, nowMs: number, policy: PlannerPolicy): boolean {
  return node.operatorState === "enabled" && node.roles.includes("filer") && isSettled(node, nowMs, policy);
}

interface Target {
  readonly node: ClusterNode;
  /** Vservers placed on it, including those this plan has added. */
  used: number;
}

/**
 * Whether `a` is lighter than `b` for one more vserver:
 * 1. lowest share of its capacity in use after taking it (exact, by cross-multiplying);
 * 2. lowest measured load, then most free memory: measured, so only to break ties;
 * 3. node id, so equal inputs always give equal plans.
 */
function isLighter(a: Target, b: Target): boolean {
  const shareA = (a.used + 1) * b.node.vserversMax;
  const shareB = (b.used + 1) * a.node.vserversMax;
  if (shareA !== shareB) return shareA < shareB;
  if (a.node.load.loadPerCore !== b.node.load.loadPerCore)
    return a.node.load.loadPerCore < b.node.load.loadPerCore;
  if (a.node.load.memoryFreeBytes !== b.node.load.memoryFreeBytes)
    return a.node.load.memoryFreeBytes > b.node.load.memoryFreeBytes;
  return a.node.id < b.node.id;
}

/**
 * The targets of one plan and the choice among them. A vserver goes to the target that has received
 * the fewest vservers from the same origin (its dead or draining node) in this plan, and among
 * those to the lightest. Spreading one node's vservers comes first so that their takeovers (fencing,
 * mounting, raising VIPs) run in parallel on several nodes and no single node absorbs a whole
 * failure; new vservers (no origin) go to the lightest.
 */
export class TargetPool {
  /** Targets with a free slot, lightest on top; a target leaves when it fills. */
  private readonly open = new MinHeap<Target>(isLighter);
  /** For each origin node, the targets this plan gave its vservers to, and how many each. */
  private readonly received = new Map<NodeId, Map<Target, number>>();
  /** Targets at the start, full or not: none means "no node", rather than "no capacity". */
  readonly targetCount: number;

  constructor(state: ClusterState, nowMs: number, policy: PlannerPolicy) {
    const used = new Map<NodeId, number>();
    for (const vserver of state.vservers) {
      const node = vserver.placement.node;
      if (node !== null) used.set(node, (used.get(node) ?? 0) + 1);
    }
    let targetCount = 0;
    for (const node of state.nodes) {
      if (!isTarget(node, nowMs, policy)) continue;
      targetCount++;
      const target: Target = { node, used: used.get(node.id) ?? 0 };
      if (target.used < node.vserversMax) this.open.push(target);
    }
    this.targetCount = targetCount;
  }

  /**
   * Gives one vserver coming from `origin` (null: it had no node) to the best target with a free
   * slot: its node id, or undefined if none has one.
   */
  take(origin: NodeId | null, requires: readonly string[] = []): NodeId | undefined {
    const given = origin === null ? undefined : this.received.get(origin);
    // Targets that do not reach what the vserver requires are set aside for this choice only: few
    // vservers require anything a node can lack, so the heap's order serves the common case.
    const unfit: Target[] = [];
    const fits = (target: Target): boolean => reachesAll(target.node, requires);
    // Any target that has received nothing from this origin beats every one that has, so set
    // aside the few that have until the lightest of the rest shows on top.
    const setAside: Target[] = [];
    for (;;) {
      const top = this.open.peek();
      if (top === undefined) break;
      if (!fits(top)) unfit.push(this.open.pop()!);
      else if (given?.has(top) === true) setAside.push(this.open.pop()!);
      else break;
    }
    let best = this.open.pop();
    if (best === undefined && given !== undefined) best = fewestThenLightest(setAside, given);
    for (const target of setAside) if (target !== best) this.open.push(target);
    for (const target of unfit) this.open.push(target);
    if (best === undefined) return undefined;
    best.used++;
    if (best.used < best.node.vserversMax) this.open.push(best);
    if (origin !== null) {
      const counts = given ?? new Map<Target, number>();
      counts.set(best, (counts.get(best) ?? 0) + 1);
      this.received.set(origin, counts);
    }
    return best.node.id;
  }
}

function reachesAll(node: ClusterNode, requires: readonly string[]): boolean {
  return lacking(node, requires).length === 0;
}

function lacking(node: ClusterNode, requires: readonly string[]): string[] {
  if (requires.length === 0) return [];
  const reaches = new Set(node.reaches);
  return requires.filter((label) => !reaches.has(label));
}

/** What `node` lacks of what `vserver` requires (see Vserver.requires). */
export function missingReach(vserver: Vserver, node: ClusterNode): string[] {
  return lacking(node, vserver.requires ?? []);
}

/** Every open target has received from this origin: the one that received the fewest, then the lightest. */
function fewestThenLightest(
  targets: readonly Target[],
  given: ReadonlyMap<Target, number>,
): Target | undefined {
  let best: Target | undefined;
  for (const target of targets) {
    if (best === undefined) {
      best = target;
      continue;
    }
    const countTarget = given.get(target)!;
    const countBest = given.get(best)!;
    if (countTarget < countBest || (countTarget === countBest && isLighter(target, best))) best = target;
  }
  return best;
}
