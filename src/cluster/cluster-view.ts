/**
 * The cluster's records under `cluster/`, parsed into typed maps, kept current by following the
 * store. The master, every node agent and `status` read the cluster through this. A record that does
 * not parse is logged and left out (never guessed at); the rest of the cluster goes on.
 */
import type { Logger } from "pino";
import type { z } from "zod";
import { CatalogError, decodeRecord } from "../storage/catalog.ts";
import type { CoordinationStore, KeyValue, WatchEvent } from "../store/index.ts";
import { type Follower, followPrefix } from "../store/index.ts";
import {
  CLUSTER_PREFIX,
  FILESYSTEMS_PREFIX,
  HOLDERS_PREFIX,
  type HolderRecord,
  holderRecordSchema,
  idOfKey,
  MASTER_KEY,
  type MasterRecord,
  MIGRATIONS_PREFIX,
  type MigrationRecord,
  masterRecordSchema,
  migrationRecordSchema,
  NODE_SETTINGS_PREFIX,
  NODES_PREFIX,
  type NodeRecord,
  type NodeSettings,
  nodeRecordSchema,
  nodeSettingsSchema,
  PLACEMENTS_PREFIX,
  type PlacementRecord,
  placementRecordSchema,
  ROUTES_PREFIX,
  type RouteRecord,
  RUNNING_PREFIX,
  type RunningRecord,
  routeRecordSchema,
  runningRecordSchema,
  VSERVERS_PREFIX,
  type VserverRecord,
  vserverRecordSchema,
} from "./catalog.ts";

export interface Versioned<T> {
  readonly record: T;
  readonly modRevision: number;
}

export interface ClusterSnapshot {
  /** Nodes holding a lease now. */
  readonly nodes: Map<string, NodeRecord>;
  readonly settings: Map<string, NodeSettings>;
  readonly vservers: Map<string, Versioned<VserverRecord>>;
  readonly placements: Map<string, Versioned<PlacementRecord>>;
  readonly running: Map<string, RunningRecord>;
  /** Who holds each vserver's volumes (see HolderRecord). */
  readonly holders: Map<string, Versioned<HolderRecord>>;
  readonly filesystems: Set<string>;
  /** Live moves asked for or under way, by vserver. */
  readonly migrations: Map<string, Versioned<MigrationRecord>>;
  /** VIPs answered through a router node, by VIP (see net/subnet-route.ts). */
  readonly routes: Map<string, Versioned<RouteRecord>>;
  master: { readonly record: MasterRecord; readonly term: number } | undefined;
  revision: number;
}

export function emptySnapshot(): ClusterSnapshot {
  return {
    nodes: new Map(),
    settings: new Map(),
    vservers: new Map(),
    placements: new Map(),
    running: new Map(),
    holders: new Map(),
    filesystems: new Set(),
    migrations: new Map(),
    routes: new Map(),
    master: undefined,
    revision: 0,
  };
}

/** Sets or deletes one versioned record of a snapshot's map. */
function putVersioned<T>(
  map: Map<string, Versioned<T>>,
  id: string,
  schema: z.ZodType<T>,
  key: string,
  kv: KeyValue | undefined,
): void {
  if (kv === undefined) map.delete(id);
  else map.set(id, { record: decodeRecord(schema, key, kv.value), modRevision: kv.modRevision });
}

/** Applies one key's new value (or its deletion, when `kv` is undefined) to a snapshot. */
export function applyKey(
  snapshot: ClusterSnapshot,
  key: string,
  kv: KeyValue | undefined,
  log?: Logger,
): void {
  try {
    if (key === MASTER_KEY) {
      snapshot.master =
        kv === undefined
          ? undefined
          : { record: decodeRecord(masterRecordSchema, key, kv.value), term: kv.createRevision };
    } else if (key.startsWith(NODES_PREFIX)) {
      const id = idOfKey(NODES_PREFIX, key);
      if (kv === undefined) snapshot.nodes.delete(id);
      else snapshot.nodes.set(id, decodeRecord(nodeRecordSchema, key, kv.value));
    } else if (key.startsWith(NODE_SETTINGS_PREFIX)) {
      const id = idOfKey(NODE_SETTINGS_PREFIX, key);
      if (kv === undefined) snapshot.settings.delete(id);
      else snapshot.settings.set(id, decodeRecord(nodeSettingsSchema, key, kv.value));
    } else if (key.startsWith(VSERVERS_PREFIX)) {
      putVersioned(snapshot.vservers, idOfKey(VSERVERS_PREFIX, key), vserverRecordSchema, key, kv);
    } else if (key.startsWith(PLACEMENTS_PREFIX)) {
      putVersioned(snapshot.placements, idOfKey(PLACEMENTS_PREFIX, key), placementRecordSchema, key, kv);
    } else if (key.startsWith(RUNNING_PREFIX)) {
      const id = idOfKey(RUNNING_PREFIX, key);
      if (kv === undefined) snapshot.running.delete(id);
      else snapshot.running.set(id, decodeRecord(runningRecordSchema, key, kv.value));
    } else if (key.startsWith(HOLDERS_PREFIX)) {
      putVersioned(snapshot.holders, idOfKey(HOLDERS_PREFIX, key), holderRecordSchema, key, kv);
    } else if (key.startsWith(MIGRATIONS_PREFIX)) {
      putVersioned(snapshot.migrations, idOfKey(MIGRATIONS_PREFIX, key), migrationRecordSchema, key, kv);
    } else if (key.startsWith(ROUTES_PREFIX)) {
      putVersioned(snapshot.routes, idOfKey(ROUTES_PREFIX, key), routeRecordSchema, key, kv);
    } else if (key.startsWith(FILESYSTEMS_PREFIX)) {
      const id = idOfKey(FILESYSTEMS_PREFIX, key);
      if (kv === undefined) snapshot.filesystems.delete(id);
      else snapshot.filesystems.add(id);
    }
  } catch (error) {
    if (!(error instanceof CatalogError)) throw error;
    log?.error({ err: error, key }, "ignoring a malformed cluster record");
  }
}

/** Reads the whole cluster once. */
export async function readClusterSnapshot(store: CoordinationStore, log?: Logger): Promise<ClusterSnapshot> {
  const { kvs, revision } = await store.range(CLUSTER_PREFIX);
  const snapshot = emptySnapshot();
  for (const kv of kvs) applyKey(snapshot, kv.key, kv, log);
  snapshot.revision = revision;
  return snapshot;
}

/** What changed: the key, and whether it now exists. */
export interface ViewChange {
  readonly key: string;
  readonly exists: boolean;
}

export class ClusterView implements AsyncDisposable {
  current: ClusterSnapshot = emptySnapshot();
  private follower: Follower | undefined;

  /** Follows `cluster/`; `onChange` runs after every snapshot (changes: null) and every event. */
  static async follow(
    store: CoordinationStore,
    log: Logger,
    onChange: (changes: readonly ViewChange[] | null) => void,
  ): Promise<ClusterView> {
    const view = new ClusterView();
    view.follower = await followPrefix(
      store,
      CLUSTER_PREFIX,
      {
        onSnapshot: (kvs, revision) => {
          const snapshot = emptySnapshot();
          for (const kv of kvs) applyKey(snapshot, kv.key, kv, log);
          snapshot.revision = revision;
          view.current = snapshot;
          onChange(null);
        },
        onEvent: (event: WatchEvent) => {
          const key = event.type === "put" ? event.kv.key : event.key;
          applyKey(view.current, key, event.type === "put" ? event.kv : undefined, log);
          view.current.revision = event.type === "put" ? event.kv.modRevision : event.revision;
          onChange([{ key, exists: event.type === "put" }]);
        },
      },
      log,
    );
    return view;
  }

  async close(): Promise<void> {
    await this.follower?.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
