/**
 * Port failure (pure): every VIP on a port that is down moves to a good port of the same node on the
 * VIP's own subnet, the least loaded first (counting what this plan already put there, so a dead
 * port's VIPs spread instead of piling onto one). A port on another subnet is no home for it: its
 * clients find a VIP by ARP on their own segment, so there it answers nobody. A VIP on no subnet the
 * node knows may take any good port. A VIP with no good port on its node moves with its vserver: the
 * vserver goes to another node, and all its VIPs with it.
 */
import { subnetOf } from "./cidr.ts";
import type { NetAction, PortState, VipPlacement } from "./model.ts";

export function planPortFailover(ports: readonly PortState[], vips: readonly VipPlacement[]): NetAction[] {
  const subnets = [...new Set(ports.flatMap((p) => (p.subnet === null ? [] : [p.subnet])))];
  const portKey = (nodeId: string, name: string): string => `${nodeId}/${name}`;
  const byKey = new Map(ports.map((p) => [portKey(p.nodeId, p.name), p]));
  // Load each good port will carry: its own, plus the VIPs this plan sends to it.
  const planned = new Map(ports.map((p) => [portKey(p.nodeId, p.name), p.loadBytesPerSec]));
  const actions: NetAction[] = [];
  const evacuated = new Set<string>();
  const stranded = vips.filter((v) => {
    if (v.port === null) return true;
    return byKey.get(portKey(v.nodeId, v.port))?.up !== true;
  });
  // The busiest VIPs choose first, so the spread is by load and not by the order VIPs were listed.
  for (const vip of [...stranded].sort(
    (a, b) => b.loadBytesPerSec - a.loadBytesPerSec || a.vip.localeCompare(b.vip),
  )) {
    if (evacuated.has(vip.vserverId)) continue;
    const own = subnetOf(vip.vip, subnets);
    const good = ports.filter(
      (p) => p.nodeId === vip.nodeId && p.up && p.subnet !== null && (own === undefined || p.subnet === own),
    );
    const load = (p: PortState): number => planned.get(portKey(p.nodeId, p.name)) ?? 0;
    const choice = [...good].sort(
      (a, b) =>
        Number(b.subnet === own) - Number(a.subnet === own) ||
        load(a) - load(b) ||
        a.name.localeCompare(b.name),
    )[0];
    if (choice === undefined) {
      evacuated.add(vip.vserverId);
      actions.push({
        kind: "move-vserver",
        vserverId: vip.vserverId,
        fromNode: vip.nodeId,
        toNode: null,
        reason: `VIP ${vip.vip}: port ${vip.port ?? "-"} on ${vip.nodeId} is down and the node has no good port left on ${own ?? "any subnet"}`,
      });
      continue;
    }
    planned.set(portKey(choice.nodeId, choice.name), load(choice) + vip.loadBytesPerSec);
    actions.push({
      kind: "move-vip",
      vip: vip.vip,
      nodeId: vip.nodeId,
      fromPort: vip.port,
      toPort: choice.name,
      reason:
        `port ${vip.port ?? "-"} on ${vip.nodeId} is down; ${choice.name} is ` +
        (choice.subnet === own
          ? "on the VIP's subnet"
          : `the least loaded good port (subnet ${choice.subnet})`),
    });
  }
  // A vserver that leaves takes every VIP with it: no VIP of it moves on its old node.
  return actions.filter((a) => a.kind !== "move-vip" || !evacuated.has(vipOwner(vips, a.vip)));
}

function vipOwner(vips: readonly VipPlacement[], vip: string): string {
  return vips.find((v) => v.vip === vip)?.vserverId ?? "";
}
