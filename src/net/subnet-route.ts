/**
 * Subnet failure between a node and its clients (pure): the node's port on the client's subnet has
 * link but no longer reaches anyone there (a switch stopped passing it). For each VIP the node serves
 * on that subnet, find a live node that still reaches the subnet and shares another subnet with the
 * owner over which both have good ports with addresses: that node becomes the router. It answers for
 * the VIP on its port on the client's subnet and forwards over the shared subnet to the owner, so the
 * clients keep their mounts without the vserver moving. The router carrying the fewest routes already
 * is chosen, so one node's cut-off VIPs spread. A route in place (`current`) that still works is kept
 * as it is.
 *
 * A port with no link at all is a port failure, not a subnet failure: that is port-failover.ts's (the
 * VIP moves to another port, or its vserver to another node), so no route is planned for it.
 */
import { subnetOf } from "./cidr.ts";
import type { NetAction, NodeReach, PortState, SubnetRoute, VipPlacement } from "./model.ts";

type ViaPort = PortState & { readonly address: string };

export function planSubnetRoutes(
  nodes: readonly NodeReach[],
  ports: readonly PortState[],
  vips: readonly VipPlacement[],
  current: readonly SubnetRoute[] = [],
): NetAction[] {
  const subnets = [...new Set(ports.flatMap((p) => (p.subnet === null ? [] : [p.subnet])))];
  const reach = new Map(nodes.map((n) => [n.nodeId, n]));
  const goodPort = (nodeId: string, subnet: string): PortState | undefined =>
    ports
      .filter((p) => p.nodeId === nodeId && p.up && p.subnet === subnet)
      .sort((a, b) => a.loadBytesPerSec - b.loadBytesPerSec || a.name.localeCompare(b.name))[0];
  const viaPort = (nodeId: string, subnet: string): ViaPort | undefined =>
    ports
      .filter((p): p is ViaPort => p.nodeId === nodeId && p.up && p.subnet === subnet && p.address !== null)
      .sort((a, b) => a.loadBytesPerSec - b.loadBytesPerSec || a.name.localeCompare(b.name))[0];
  const reaches = (nodeId: string, subnet: string): boolean =>
    reach.get(nodeId)?.live === true &&
    (reach.get(nodeId)?.clientSubnets.includes(subnet) ?? false) &&
    goodPort(nodeId, subnet) !== undefined;
  const cutOff = (nodeId: string, subnet: string): boolean =>
    ports.some((p) => p.nodeId === nodeId && p.subnet === subnet && p.linkUp && !p.up);
  const portUp = (nodeId: string, name: string, subnet: string): PortState | undefined =>
    ports.find((p) => p.nodeId === nodeId && p.name === name && p.up && p.subnet === subnet);
  // A route in place that still works stays as it is, whatever the ports' loads say now: each
  // change of router or port takes the route down and up again, and its clients lose packets.
  const stillGood = (route: SubnetRoute, vip: VipPlacement, subnet: string): boolean =>
    route.ownerNode === vip.nodeId &&
    route.vserverId === vip.vserverId &&
    route.subnet === subnet &&
    reaches(route.routerNode, subnet) &&
    portUp(route.routerNode, route.routerPort, subnet) !== undefined &&
    portUp(route.routerNode, route.routerViaPort, route.viaSubnet)?.address === route.routerAddress &&
    portUp(route.ownerNode, route.ownerViaPort, route.viaSubnet)?.address === route.ownerAddress;
  const needs = (vip: VipPlacement): string | undefined => {
    const subnet = subnetOf(vip.vip, subnets);
    return subnet !== undefined && !reaches(vip.nodeId, subnet) && cutOff(vip.nodeId, subnet)
      ? subnet
      : undefined;
  };
  const byVip = new Map(current.map((r) => [r.vip, r]));
  const kept = new Map<string, SubnetRoute>();
  for (const vip of vips) {
    const before = byVip.get(vip.vip);
    const subnet = needs(vip);
    if (before !== undefined && subnet !== undefined && stillGood(before, vip, subnet))
      kept.set(vip.vip, before);
  }
  const routed = new Map<string, number>();
  for (const route of kept.values()) routed.set(route.routerNode, (routed.get(route.routerNode) ?? 0) + 1);
  const actions: NetAction[] = [];
  for (const vip of [...vips].sort((a, b) => a.vip.localeCompare(b.vip))) {
    const subnet = needs(vip);
    if (subnet === undefined) continue;
    const still = kept.get(vip.vip);
    if (still !== undefined) {
      actions.push({ kind: "route-through", ...still });
      continue;
    }
    const options = nodes
      .filter((n) => n.nodeId !== vip.nodeId && reaches(n.nodeId, subnet))
      .flatMap((n) => {
        // Another subnet both reach with a good, addressed port: the path from router to owner.
        for (const via of subnets) {
          if (via === subnet) continue;
          const routerVia = viaPort(n.nodeId, via);
          const ownerVia = viaPort(vip.nodeId, via);
          if (routerVia !== undefined && ownerVia !== undefined)
            return [{ router: n.nodeId, via, routerVia, ownerVia }];
        }
        return [];
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
    const route: SubnetRoute = {
      vip: vip.vip,
      vserverId: vip.vserverId,
      subnet,
      routerNode: choice.router,
      routerPort: (goodPort(choice.router, subnet) as PortState).name,
      routerViaPort: choice.routerVia.name,
      routerAddress: choice.routerVia.address,
      ownerNode: vip.nodeId,
      ownerViaPort: choice.ownerVia.name,
      ownerAddress: choice.ownerVia.address,
      viaSubnet: choice.via,
      reason: `${vip.nodeId} no longer reaches clients on ${subnet}; ${choice.router} does and forwards over ${choice.via}`,
    };
    actions.push({ kind: "route-through", ...route });
  }
  return actions;
}

/** The routes of a plan (its route-through actions, without the kind). */
export function subnetRoutesOf(actions: readonly NetAction[]): SubnetRoute[] {
  return actions.flatMap((a) => {
    if (a.kind !== "route-through") return [];
    const { kind: _kind, ...route } = a;
    return [route];
  });
}

/** What a route is applied as (its reason's wording aside): two routes with one text are one route. */
export function routeText(route: SubnetRoute): string {
  const { reason: _reason, ...applied } = route;
  return JSON.stringify(applied, Object.keys(applied).sort());
}
