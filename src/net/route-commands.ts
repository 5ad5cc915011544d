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

/**
 * A VIP's own port: a table holding its subnet's route through the port the VIP is on, chosen by a
 * rule on the VIP as source, so its replies leave by the port its requests arrive on (with two ports
 * on a subnet, the main table sends everything out of one). Its rules rank below the owner routes'
 * (a larger preference), which replace it while the VIP is routed through a router.
 */
export const PORT_TABLE_BASE = ROUTE_TABLE_BASE + ROUTE_TABLES_MAX;
export const PORT_RULE_PREF_BASE = ROUTE_RULE_PREF_BASE + ROUTE_TABLES_MAX;

export function vipPortUpArgvs(vip: string, port: string, subnet: string, slot: number): Argv[] {
  const table = String(PORT_TABLE_BASE + slot);
  return [
    ["ip", "route", "replace", subnet, "dev", port, "src", vip, "table", table],
    ["ip", "rule", "add", "from", vip, "lookup", table, "pref", String(PORT_RULE_PREF_BASE + slot)],
  ];
}

export function vipPortDownArgvs(vip: string, slot: number): Argv[] {
  const table = String(PORT_TABLE_BASE + slot);
  return [
    ["ip", "rule", "del", "from", vip, "lookup", table, "pref", String(PORT_RULE_PREF_BASE + slot)],
    ["ip", "route", "flush", "table", table],
  ];
}

/**
 * A managed port answers ARP only for addresses on itself (arp_ignore=1) and names its own address
 * in the requests it sends (arp_announce=2). Linux's default answers for every local address on
 * every port, so with two ports on a subnet a VIP's traffic came in by whichever port answered
 * last, not the one the VIP is on.
 */
export function portArpArgv(ports: readonly string[]): Argv {
  return [
    "sysctl",
    "-qw",
    ...ports.flatMap((port) => [
      `net.ipv4.conf.${port}.arp_ignore=1`,
      `net.ipv4.conf.${port}.arp_announce=2`,
    ]),
  ];
}

/** What `ip` says when what is added is there already, or what is deleted is gone: both are done. */
export function isAlreadyDone(message: string): boolean {
  return /File exists|No such file or directory|No such process|Cannot find device|does not exist/.test(
    message,
  );
}
