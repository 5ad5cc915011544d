/**
 * The master's side of routes through router nodes: makes `cluster/routes/` hold exactly the routes
 * planned now. Each write is conditional on the master's term and on the record being the one the
 * plan saw, so a deposed master or a plan from an old snapshot changes nothing.
 */
import type { Logger } from "pino";
import type { SubnetRoute } from "../net/model.ts";
import { encodeRecord } from "../storage/catalog.ts";
import type { CoordinationStore } from "../store/index.ts";
import { clusterKeys, type RouteRecord, routeRecordSchema } from "./catalog.ts";
import type { ClusterSnapshot } from "./cluster-view.ts";
import { termCompare } from "./master-election.ts";
import { routeOfRecord, sameRoute } from "./network-view.ts";

export interface RouteWrites {
  written: number;
  deleted: number;
  conflicts: number;
}

export async function writeRoutes(
  store: CoordinationStore,
  term: number,
  snapshot: ClusterSnapshot,
  planned: readonly SubnetRoute[],
  nowMs: number,
  log: Logger,
): Promise<RouteWrites> {
  const result: RouteWrites = { written: 0, deleted: 0, conflicts: 0 };
  const wanted = new Map(planned.map((r) => [r.vip, r]));
  for (const [vip, known] of snapshot.routes) {
    if (wanted.has(vip)) continue;
    const key = clusterKeys.route(vip);
    const done = await store.txn(
      [termCompare(term), { key, target: "mod", equals: known.modRevision }],
      [{ op: "delete", key }],
    );
    if (!done.succeeded) {
      result.conflicts++;
      continue;
    }
    result.deleted++;
    log.warn({ ...known.record }, "route through a router node no longer needed");
  }
  for (const route of planned) {
    const known = snapshot.routes.get(route.vip);
    if (known !== undefined && sameRoute(routeOfRecord(known.record), route)) continue;
    const key = clusterKeys.route(route.vip);
    const record: RouteRecord = { ...route, sinceMs: nowMs };
    const done = await store.txn(
      [
        termCompare(term),
        known === undefined
          ? { key, target: "create", equals: 0 }
          : { key, target: "mod", equals: known.modRevision },
      ],
      [{ op: "put", key, value: encodeRecord(routeRecordSchema, record) }],
    );
    if (!done.succeeded) {
      result.conflicts++;
      continue;
    }
    result.written++;
    log.warn({ ...route }, "VIP routed through a router node");
  }
  return result;
}
