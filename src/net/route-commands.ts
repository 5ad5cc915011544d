/**
 * The `ip` commands of a route through a router node (see subnet-route.ts), as argument vectors.
 *
 * Router: forwarding on for both ports, a host route for the VIP to the owner over the shared
 * subnet, and a proxy-ARP entry so the router answers for the VIP on the client's subnet without
 * holding the address (holding it would deliver the VIP's traffic locally instead of forwarding it).
 *
 * Owner: the VIP's replies to the client subnet leave by the router, through a routing table of
 * their own chosen by a rule on the VIP as source. The owner's connected route for that subnet is
 * still up (its port has link), so a plain route could not override it; the rule also leaves every
 * other address of the owner alone.
 */
import type { SubnetRoute } from "./model.ts";

export type Argv = readonly string[];

/** Routing tables (and rule preferences) owner routes use: one each, from a bounded range. */
export const ROUTE_TABLE_BASE = 20000;
export const ROUTE_RULE_PREF_BASE = 1000;
export const ROUTE_TABLES_MAX = 1024;

export function routerUpArgvs(route: SubnetRoute): Argv[] {
  return [
    [
      "sysctl",
      "-qw",
      `net.ipv4.conf.${route.routerPort}.forwarding=1`,
      `net.ipv4.conf.${route.routerViaPort}.forwarding=1`,
    ],
    ["ip", "route", "replace", `${route.vip}/32`, "via", route.ownerAddress, "dev", route.routerViaPort],
    ["ip", "neigh", "replace", "proxy", route.vip, "dev", route.routerPort],
  ];
}

export function routerDownArgvs(route: SubnetRoute): Argv[] {
  return [
    ["ip", "neigh", "del", "proxy", route.vip, "dev", route.routerPort],
    ["ip", "route", "del", `${route.vip}/32`, "via", route.ownerAddress, "dev", route.routerViaPort],
  ];
}

export function ownerUpArgvs(route: SubnetRoute, slot: number): Argv[] {
  const table = String(ROUTE_TABLE_BASE + slot);
  return [
    [
      "ip",
      "route",
      "replace",
      route.subnet,
      "via",
      route.routerAddress,
      "dev",
      route.ownerViaPort,
      "table",
      table,
    ],
    ["ip", "rule", "add", "from", route.vip, "lookup", table, "pref", String(ROUTE_RULE_PREF_BASE + slot)],
  ];
}

export function ownerDownArgvs(route: SubnetRoute, slot: number): Argv[] {
  const table = String(ROUTE_TABLE_BASE + slot);
  return [
    ["ip", "rule", "del", "from", route.vip, "lookup", table, "pref", String(ROUTE_RULE_PREF_BASE + slot)],
    ["ip", "route", "flush", "table", table],
  ];
}

/** What `ip` says when what is added is there already, or what is deleted is gone: both are done. */
export function isAlreadyDone(message: string): boolean {
  return /File exists|No such file or directory|No such process|Cannot find device|does not exist/.test(
    message,
  );
}
