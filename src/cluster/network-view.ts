/**
 * The network as the cluster's records show it (pure): each live node's ports, what it reaches and
 * where its VIPs are, in the shapes of net/model.ts, for the master's route planning and for each
 * node's probes and routes.
 */
import type { NodeReach, PortState, SubnetRoute, VipPlacement } from "../net/model.ts";
import { planSubnetRoutes, routeText, subnetRoutesOf } from "../net/subnet-route.ts";
import type { RouteRecord } from "./catalog.ts";
import type { ClusterSnapshot } from "./cluster-view.ts";
import { SUBNET_LABEL, subnetLabel } from "./reach.ts";

/** Every live node's ports (a record from before probes has link and use the same). */
export function portStates(snapshot: ClusterSnapshot): PortState[] {
  return [...snapshot.nodes.values()].flatMap((record) =>
    record.ports.map((p) => ({
      nodeId: record.nodeId,
      name: p.name,
      subnet: p.subnet,
      up: p.up,
      linkUp: p.linkUp ?? p.up,
      address: p.address,
      loadBytesPerSec: p.loadBytesPerSec,
    })),
  );
}

export function nodeReaches(snapshot: ClusterSnapshot): NodeReach[] {
  return [...snapshot.nodes.values()].map((record) => ({
    nodeId: record.nodeId,
    live: true,
    clientSubnets: record.reaches
      .filter((l) => l.startsWith(SUBNET_LABEL))
      .map((l) => l.slice(SUBNET_LABEL.length)),
    storageServers: [],
  }));
}

/** The VIPs live nodes hold, with their vservers (a VIP no vserver lists is left out). */
export function vipPlacements(snapshot: ClusterSnapshot): VipPlacement[] {
  const vserverOf = new Map<string, string>();
  for (const [id, { record }] of snapshot.vservers) for (const vip of record.vips) vserverOf.set(vip, id);
  return [...snapshot.nodes.values()].flatMap((record) =>
    record.vipPorts.flatMap((held) => {
      const vserverId = vserverOf.get(held.vip);
      return vserverId === undefined
        ? []
        : [{ vip: held.vip, vserverId, nodeId: record.nodeId, port: held.port, loadBytesPerSec: 0 }];
    }),
  );
}

/** The routes the cluster needs now (see net/subnet-route.ts). */
export function plannedRoutes(snapshot: ClusterSnapshot): SubnetRoute[] {
  const current = [...snapshot.routes.values()].map((v) => routeOfRecord(v.record));
  return subnetRoutesOf(
    planSubnetRoutes(nodeReaches(snapshot), portStates(snapshot), vipPlacements(snapshot), current),
  );
}

/** A route record without its bookkeeping. */
export function routeOfRecord(record: RouteRecord): SubnetRoute {
  const { sinceMs: _sinceMs, ...route } = record;
  return route;
}

/** Whether two routes would be applied alike (the reason's wording aside). */
export function sameRoute(a: SubnetRoute, b: SubnetRoute): boolean {
  return routeText(a) === routeText(b);
}

/** The routes that name `nodeId` as router or owner. */
export function routesNaming(snapshot: ClusterSnapshot | undefined, nodeId: string): SubnetRoute[] {
  if (snapshot === undefined) return [];
  return [...snapshot.routes.values()]
    .map((v) => routeOfRecord(v.record))
    .filter((r) => r.routerNode === nodeId || r.ownerNode === nodeId);
}

/**
 * What this node's ports on `subnet` probe: one address of each other live node there, of a port
 * that node finds usable. One a node, because a port counts as cut off only when every target failed
 * its latest probe and a round asks one target: more targets, slower to tell.
 */
export function peerAddresses(
  snapshot: ClusterSnapshot | undefined,
  nodeId: string,
  subnet: string,
): string[] {
  if (snapshot === undefined) return [];
  const byNode = new Map<string, string>();
  const usable = portStates(snapshot)
    .filter((p) => p.nodeId !== nodeId && p.subnet === subnet && p.up && p.address !== null)
    .sort((a, b) => a.name.localeCompare(b.name));
  for (const p of usable) if (!byNode.has(p.nodeId)) byNode.set(p.nodeId, p.address as string);
  return [...byNode.values()].sort();
}

/** A vserver's requirements less the subnets its VIPs are routed to on its node `nodeId`. */
export function withoutRoutedSubnets(
  requires: readonly string[],
  vserverId: string,
  nodeId: string | null,
  routes: readonly SubnetRoute[],
): string[] {
  const routed = new Set(
    routes
      .filter((r) => r.vserverId === vserverId && r.ownerNode === nodeId)
      .map((r) => subnetLabel(r.subnet)),
  );
  return requires.filter((label) => !routed.has(label));
}
