/**
 * Subnet failure between a node and its clients (pure): the node's port on the client's subnet may
 * still be up, but the node no longer reaches clients there. For each VIP it serves on that subnet,
 * find a live node that still reaches the subnet (a good port on it) and shares another subnet with
 * the owner over which both have good ports: that node becomes the router. The VIP is answered on the
 * router's port on the client's subnet and forwarded over the shared subnet to the owner, so clients
 * keep their mounts without the vserver moving. The router carrying the fewest VIPs already is chosen.
 */
import { subnetOf } from "./cidr.ts";
import type { NetAction, NodeReach, PortState, VipPlacement } from "./model.ts";

export function planSubnetRoutes(
  nodes: readonly NodeReach[],
  ports: readonly PortState[],
  vips: readonly VipPlacement[],
): NetAction[] {
  const subnets = [...new Set(ports.flatMap((p) => (p.subnet === null ? [] : [p.subnet])))];
  const reach = new Map(nodes.map((n) => [n.nodeId, n]));
  const goodPort = (nodeId: string, subnet: string): PortState | undefined =>
    ports
      .filter((p) => p.nodeId === nodeId && p.up && p.subnet === subnet)
      .sort((a, b) => a.loadBytesPerSec - b.loadBytesPerSec || a.name.localeCompare(b.name))[0];
  const reaches = (nodeId: string, subnet: string): boolean =>
    reach.get(nodeId)?.live === true &&
    (reach.get(nodeId)?.clientSubnets.includes(subnet) ?? false) &&
    goodPort(nodeId, subnet) !== undefined;
  const routed = new Map<string, number>();
  const actions: NetAction[] = [];
  for (const vip of [...vips].sort((a, b) => a.vip.localeCompare(b.vip))) {
    const subnet = subnetOf(vip.vip, subnets);
    if (subnet === undefined || reaches(vip.nodeId, subnet)) continue;
    const options = nodes
      .filter((n) => n.nodeId !== vip.nodeId && reaches(n.nodeId, subnet))
      .flatMap((n) => {
        // Another subnet both reach with a good port: the path from router to owner.
        const via = subnets.find(
          (s) => s !== subnet && goodPort(n.nodeId, s) !== undefined && goodPort(vip.nodeId, s) !== undefined,
        );
        return via === undefined ? [] : [{ router: n.nodeId, via }];
      })
      .sort(
        (a, b) =>
          (routed.get(a.router) ?? 0) - (routed.get(b.router) ?? 0) || a.router.localeCompare(b.router),
      );
    const choice = options[0];
    if (choice === undefined) {
      actions.push({
        kind: "stay",
        subject: vip.vip,
        reason: `${vip.nodeId} no longer reaches clients on ${subnet}, and no live node reaches them and ${vip.nodeId} over another subnet`,
      });
      continue;
    }
    routed.set(choice.router, (routed.get(choice.router) ?? 0) + 1);
    actions.push({
      kind: "route-through",
      vip: vip.vip,
      routerNode: choice.router,
      routerPort: (goodPort(choice.router, subnet) as PortState).name,
      ownerNode: vip.nodeId,
      viaSubnet: choice.via,
      reason: `${vip.nodeId} no longer reaches clients on ${subnet}; ${choice.router} does and forwards over ${choice.via}`,
    });
  }
  return actions;
}
