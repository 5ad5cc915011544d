/**
 * Storage path loss (pure): a vserver whose node cannot reach every storage server holding its
 * volumes' chunks moves to a live node that can, the one reaching the most storage servers first
 * (then the fewest vservers), instead of letting its writes stall until they time out. With no such
 * node it stays, and says why. Pinned vservers stay too.
 */
import type { NetAction, NodeReach } from "./model.ts";

export interface VserverStorage {
  readonly vserverId: string;
  readonly nodeId: string;
  readonly pinned: boolean;
  /** Storage servers holding a replica of any of its volumes' chunks. */
  readonly servers: readonly string[];
}

export function planStoragePathMoves(
  nodes: readonly NodeReach[],
  vservers: readonly VserverStorage[],
): NetAction[] {
  const reach = new Map(nodes.map((n) => [n.nodeId, new Set(n.storageServers)]));
  const placed = new Map<string, number>();
  for (const v of vservers) placed.set(v.nodeId, (placed.get(v.nodeId) ?? 0) + 1);
  const actions: NetAction[] = [];
  for (const v of vservers) {
    const here = reach.get(v.nodeId) ?? new Set<string>();
    const missing = v.servers.filter((s) => !here.has(s));
    if (missing.length === 0) continue;
    const what = `${v.nodeId} cannot reach storage server${missing.length > 1 ? "s" : ""} ${missing.join(", ")}`;
    if (v.pinned) {
      actions.push({ kind: "stay", subject: v.vserverId, reason: `${what}, but the vserver is pinned` });
      continue;
    }
    const candidates = nodes
      .filter((n) => n.live && n.nodeId !== v.nodeId && v.servers.every((s) => reach.get(n.nodeId)?.has(s)))
      .sort(
        (a, b) =>
          b.storageServers.length - a.storageServers.length ||
          (placed.get(a.nodeId) ?? 0) - (placed.get(b.nodeId) ?? 0) ||
          a.nodeId.localeCompare(b.nodeId),
      );
    const target = candidates[0];
    if (target === undefined) {
      actions.push({
        kind: "stay",
        subject: v.vserverId,
        reason: `${what}, and no live node reaches them all`,
      });
      continue;
    }
    placed.set(target.nodeId, (placed.get(target.nodeId) ?? 0) + 1);
    placed.set(v.nodeId, (placed.get(v.nodeId) ?? 1) - 1);
    actions.push({
      kind: "move-vserver",
      vserverId: v.vserverId,
      fromNode: v.nodeId,
      toNode: target.nodeId,
      reason: `${what}; ${target.nodeId} reaches every server holding its volumes`,
    });
  }
  return actions;
}
