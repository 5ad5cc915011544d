/**
 * The cluster's status as an operator reads it: nodes and their state, vservers with where they
 * run and why not, volumes and their health, live moves and how far they got. Assembled from a snapshot of the store and the storage
 * census; pure, so the admin API and the tests build the same document.
 */

import { describeBlocked } from "../cluster/blocked-text.ts";
import type { MigrationRecord } from "../cluster/catalog.ts";
import type { ClusterSnapshot } from "../cluster/cluster-view.ts";
import { ARENA_PAGE_BYTES } from "../service/arena.ts";
import type { VolumeHealth } from "../storage/chunk-census.ts";

export interface NodeStatus {
  readonly id: string;
  readonly alive: boolean;
  readonly operatorState: string;
  readonly roles: readonly string[];
  readonly isMaster: boolean;
  /** Vservers placed on it. */
  readonly vservers: readonly string[];
  readonly loadPerCore: number | null;
  readonly memoryFreeBytes: number | null;
  /** Its physical ports: up, cut (link, but its subnet does not answer) or down (no link). */
  readonly ports: readonly {
    readonly name: string;
    readonly subnet: string | null;
    readonly state: "up" | "cut" | "down";
  }[];
}

/** A VIP whose node is cut off from its subnet, answered and forwarded by a router node. */
export interface RouteStatus {
  readonly vip: string;
  readonly vserver: string;
  readonly owner: string;
  readonly router: string;
  readonly routerPort: string;
  readonly viaSubnet: string;
  readonly reason: string;
  readonly sinceMs: number;
}

export type VserverState = "running" | "starting" | "down";

export interface VserverStatus {
  readonly id: string;
  readonly name: string;
  readonly priority: number;
  readonly pinned: boolean;
  readonly vips: readonly string[];
  readonly volumes: readonly string[];
  readonly exports: readonly string[];
  /** Where the master placed it. */
  readonly node: string | null;
  readonly generation: number;
  readonly state: VserverState;
  readonly runningOn: string | null;
  readonly urls: readonly string[];
  readonly blocked: { readonly code: string; readonly text: string } | null;
  /** Its service state in memory on the node running it (64 KiB pages, live record bytes); null when not running. */
  readonly serviceState: {
    readonly pages: number;
    readonly bytes: number;
    readonly liveBytes: number;
  } | null;
}

export interface VolumeStatus extends Omit<VolumeHealth, "volumeId"> {
  readonly id: string;
  /** The vserver it belongs to. */
  readonly vserver: string | null;
  /** Raised whenever a node takes the volume over; storage servers refuse older epochs. */
  readonly ownerEpoch: number;
  /** ok: every chunk has all its copies; degraded: some lack copies; unavailable: some have none. */
  readonly state: "ok" | "degraded" | "unavailable";
}

/** A live move (`vserver move --live`) asked for, under way, or how the last one ended. */
export interface MigrationStatus extends Omit<MigrationRecord, "requestId"> {
  readonly vserver: string;
}

export interface StatusDocument {
  readonly master: { readonly nodeId: string; readonly term: number } | null;
  readonly nodes: readonly NodeStatus[];
  readonly vservers: readonly VserverStatus[];
  readonly volumes: readonly VolumeStatus[];
  readonly routes: readonly RouteStatus[];
  readonly migrations: readonly MigrationStatus[];
}

/** `ownerEpochs`: each volume's owner epoch (storage/owners/), 0 where none is recorded. */
export function buildStatus(
  snapshot: ClusterSnapshot,
  volumes: readonly VolumeHealth[],
  ownerEpochs: ReadonlyMap<string, number>,
): StatusDocument {
  const placedOn = new Map<string, string[]>();
  for (const [id, { record }] of snapshot.placements) {
    if (record.node === null) continue;
    const list = placedOn.get(record.node) ?? [];
    list.push(id);
    placedOn.set(record.node, list);
  }
  const nodeIds = new Set([...snapshot.nodes.keys(), ...snapshot.settings.keys(), ...placedOn.keys()]);
  const nodes = [...nodeIds].sort().map((id): NodeStatus => {
    const record = snapshot.nodes.get(id);
    return {
      id,
      alive: record !== undefined,
      operatorState: snapshot.settings.get(id)?.operatorState ?? "enabled",
      roles: record?.roles ?? [],
      isMaster: snapshot.master?.record.nodeId === id,
      vservers: (placedOn.get(id) ?? []).sort(),
      loadPerCore: record?.loadPerCore ?? null,
      memoryFreeBytes: record?.memoryFreeBytes ?? null,
      ports: (record?.ports ?? []).map((p) => ({
        name: p.name,
        subnet: p.subnet,
        state: p.up ? "up" : (p.linkUp ?? p.up) ? "cut" : "down",
      })),
    };
  });
  const owners = new Map<string, string>();
  const vservers = [...snapshot.vservers.values()]
    .map(({ record }) => record)
    .sort((a, b) => (a.vserverId < b.vserverId ? -1 : 1))
    .map((record): VserverStatus => {
      for (const volumeId of record.volumes) owners.set(volumeId, record.vserverId);
      const placement = snapshot.placements.get(record.vserverId)?.record;
      const running = snapshot.running.get(record.vserverId);
      const node = placement?.node ?? null;
      const nodeAlive = node !== null && snapshot.nodes.has(node);
      const current =
        running !== undefined && running.nodeId === node && running.generation === placement?.generation;
      const state: VserverState = !nodeAlive ? "down" : current ? "running" : "starting";
      const blocked = placement?.blocked ?? null;
      const usage =
        running === undefined
          ? undefined
          : snapshot.nodes.get(running.nodeId)?.serviceState.find((u) => u.vserverId === record.vserverId);
      const serviceState =
        running === undefined
          ? null
          : {
              pages: usage?.pages ?? running.statePages,
              bytes: (usage?.pages ?? running.statePages) * ARENA_PAGE_BYTES,
              liveBytes: usage?.liveBytes ?? running.stateLiveBytes,
            };
      return {
        id: record.vserverId,
        name: record.name,
        priority: record.priority,
        pinned: record.pinned,
        vips: record.vips,
        volumes: record.volumes,
        exports: record.exports,
        node,
        generation: placement?.generation ?? 0,
        state,
        runningOn: running?.nodeId ?? null,
        urls: running?.endpoints.map((e) => e.url) ?? [],
        blocked: blocked === null ? null : { code: blocked.code, text: describeBlocked(blocked) },
        serviceState,
      };
    });
  const volumeStatus = volumes.map(
    ({ volumeId, ...health }): VolumeStatus => ({
      id: volumeId,
      ...health,
      vserver: owners.get(volumeId) ?? null,
      ownerEpoch: ownerEpochs.get(volumeId) ?? 0,
      state: health.unavailable > 0 ? "unavailable" : health.underReplicated > 0 ? "degraded" : "ok",
    }),
  );
  const master =
    snapshot.master === undefined
      ? null
      : { nodeId: snapshot.master.record.nodeId, term: snapshot.master.term };
  const routes = [...snapshot.routes.values()]
    .map(({ record }) => record)
    .sort((a, b) => (a.vip < b.vip ? -1 : 1))
    .map(
      (r): RouteStatus => ({
        vip: r.vip,
        vserver: r.vserverId,
        owner: r.ownerNode,
        router: r.routerNode,
        routerPort: r.routerPort,
        viaSubnet: r.viaSubnet,
        reason: r.reason,
        sinceMs: r.sinceMs,
      }),
    );
  const migrations = [...snapshot.migrations]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([vserver, { record }]): MigrationStatus => {
      const { requestId: _request, ...rest } = record;
      return { vserver, ...rest };
    });
  return { master, nodes, vservers, volumes: volumeStatus, routes, migrations };
}
