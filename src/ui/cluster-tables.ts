/**
 * The cluster half of the dashboard, from GET /v1/status: nodes, their ports and the routes around
 * cut ports, VIPs and where they answer, vservers and why one is not where it should be. Pure.
 */
import type { NodeStatus, RouteStatus, StatusDocument, VserverStatus } from "../api/status.ts";
import { formatAgo, formatBytes, formatLoad } from "./format.ts";
import { html, type SafeHtml } from "./html.ts";
import { badge, type Tone, table } from "./table.ts";

const PORT_TONE: Readonly<Record<NodeStatus["ports"][number]["state"], Tone>> = {
  up: "ok",
  cut: "warn",
  down: "bad",
};
const VSERVER_TONE: Readonly<Record<VserverStatus["state"], Tone>> = {
  running: "ok",
  starting: "warn",
  down: "bad",
};

const dash = (list: readonly string[]): string => (list.length === 0 ? "-" : list.join(", "));

export function nodesTable(status: StatusDocument): SafeHtml {
  return table(
    [
      {
        title: "node",
        cell: (n) => html`${n.id}${n.isMaster ? html` <span class="master">master</span>` : ""}`,
      },
      { title: "alive", cell: (n) => (n.alive ? badge("alive", "ok") : badge("dead", "bad")) },
      {
        title: "state",
        cell: (n) => badge(n.operatorState, n.operatorState === "enabled" ? "ok" : "warn"),
      },
      { title: "roles", cell: (n) => dash(n.roles) },
      { title: "load/core", cell: (n) => formatLoad(n.loadPerCore) },
      {
        title: "memory free",
        cell: (n) => (n.memoryFreeBytes === null ? "-" : formatBytes(n.memoryFreeBytes)),
      },
      { title: "vservers", cell: (n) => dash(n.vservers) },
    ],
    status.nodes,
    {
      empty: "no nodes",
      data: (n) => ({ node: n.id, alive: n.alive, master: n.isMaster }),
    },
  );
}

interface PortRow {
  readonly node: string;
  readonly port: NodeStatus["ports"][number];
}

export function portsTable(status: StatusDocument): SafeHtml {
  const rows = status.nodes.flatMap((n) => n.ports.map((port): PortRow => ({ node: n.id, port })));
  return table(
    [
      { title: "node", cell: (r) => r.node },
      { title: "port", cell: (r) => r.port.name },
      { title: "subnet", cell: (r) => r.port.subnet ?? "-" },
      { title: "state", cell: (r) => badge(r.port.state, PORT_TONE[r.port.state]) },
    ],
    rows,
    { empty: "no ports reported (nodes on loopback)", data: (r) => ({ node: r.node, port: r.port.name }) },
  );
}

export function routesTable(status: StatusDocument, nowMs: number): SafeHtml {
  return table<RouteStatus>(
    [
      { title: "VIP", cell: (r) => r.vip },
      { title: "vserver", cell: (r) => r.vserver },
      { title: "owner", cell: (r) => r.owner },
      { title: "answered by", cell: (r) => `${r.router} on ${r.routerPort}` },
      { title: "forwarded over", cell: (r) => r.viaSubnet },
      { title: "why", cell: (r) => r.reason },
      { title: "since", cell: (r) => formatAgo(r.sinceMs, nowMs) },
    ],
    status.routes,
    { empty: "no routed VIPs: every node reaches its subnets", data: (r) => ({ vip: r.vip }) },
  );
}

interface VipRow {
  readonly vip: string;
  readonly vserver: VserverStatus;
  readonly route: RouteStatus | undefined;
}

/** Each VIP with the node answering it: the vserver's own, or a router's when its port is cut. */
export function vipRows(status: StatusDocument): VipRow[] {
  const routes = new Map(status.routes.map((r) => [r.vip, r]));
  return status.vservers
    .flatMap((vserver) => vserver.vips.map((vip): VipRow => ({ vip, vserver, route: routes.get(vip) })))
    .sort((a, b) => (a.vip < b.vip ? -1 : a.vip > b.vip ? 1 : 0));
}

export function vipsTable(status: StatusDocument): SafeHtml {
  return table(
    [
      { title: "VIP", cell: (r) => r.vip },
      { title: "vserver", cell: (r) => r.vserver.id },
      { title: "on", cell: (r) => r.vserver.runningOn ?? badge("nowhere", "bad") },
      {
        title: "answered",
        cell: (r) =>
          r.route === undefined
            ? r.vserver.runningOn === null
              ? "-"
              : "directly"
            : `through ${r.route.router}`,
      },
    ],
    vipRows(status),
    { empty: "no VIPs", data: (r) => ({ vip: r.vip, vserver: r.vserver.id }) },
  );
}

export function vserversTable(status: StatusDocument): SafeHtml {
  return table(
    [
      {
        title: "vserver",
        cell: (v) => html`${v.id}${v.name === v.id ? "" : html` <span class="muted">${v.name}</span>`}`,
      },
      { title: "state", cell: (v) => badge(v.state, VSERVER_TONE[v.state]) },
      { title: "node", cell: (v) => v.node ?? "-" },
      { title: "generation", cell: (v) => v.generation },
      { title: "priority", cell: (v) => v.priority },
      { title: "pinned", cell: (v) => (v.pinned ? "pinned" : "-") },
      { title: "volumes", cell: (v) => dash(v.volumes) },
      {
        title: "state memory",
        cell: (v) => (v.serviceState === null ? "-" : formatBytes(v.serviceState.bytes)),
      },
      {
        title: "blocked",
        cell: (v) => (v.blocked === null ? "-" : html`<span class="blocked">${v.blocked.text}</span>`),
      },
    ],
    status.vservers,
    {
      empty: "no vservers",
      data: (v) => ({ vserver: v.id, node: v.node, state: v.state, blocked: v.blocked?.code ?? null }),
    },
  );
}
