/**
 * Where the cluster keeps its desired and observed state in the coordination store, and the typed
 * records under those keys. Every record is parsed at this edge with zod; a malformed value is an
 * error, never a guess.
 *
 *   cluster/nodes/<nodeId>           NodeRecord, under the node's lease: it is alive, and its health
 *   cluster/node-settings/<nodeId>   NodeSettings: what the operator asked of it (enable/disable/drain)
 *   cluster/master                   MasterRecord, under the master's lease; its createRevision is the term
 *   cluster/vservers/<vserverId>     VserverRecord: the operator's description of a vserver
 *   cluster/placements/<vserverId>   PlacementRecord: where the master wants it (generation, blocked)
 *   cluster/running/<vserverId>      RunningRecord, under the serving node's lease: where it runs now
 *   cluster/holders/<vserverId>      HolderRecord, under the holding node's lease: the node that has
 *                                    (or is taking) the vserver's volumes; deleted once it handed over
 *   cluster/migrations/<vserverId>   MigrationRecord: an operator's live move, and how it went
 *   cluster/claims/vip/<vip>         the vserver that owns a VIP (one owner per VIP, by create-only txn)
 *   cluster/claims/volume/<volumeId> the vserver that owns a volume
 *   cluster/claims/name/<name>       the vserver that has a name
 *   cluster/filesystems/<volumeId>   FilesystemRecord: a file system was made on the volume
 *   cluster/handle-ids               the next 32-bit vserver id for file handles
 */
import { z } from "zod";

export { decodeRecord, encodeRecord } from "../storage/catalog.ts";

import { LABEL_CHARS_MAX, VSERVER_VIPS_MAX, VSERVER_VIPS_MIN, VSERVER_VOLUMES_MAX } from "./model.ts";

const ROOT = "cluster/";
export const CLUSTER_PREFIX = ROOT;
export const NODES_PREFIX = `${ROOT}nodes/`;
export const NODE_SETTINGS_PREFIX = `${ROOT}node-settings/`;
export const VSERVERS_PREFIX = `${ROOT}vservers/`;
export const PLACEMENTS_PREFIX = `${ROOT}placements/`;
export const RUNNING_PREFIX = `${ROOT}running/`;
export const FILESYSTEMS_PREFIX = `${ROOT}filesystems/`;
export const HOLDERS_PREFIX = `${ROOT}holders/`;
export const MIGRATIONS_PREFIX = `${ROOT}migrations/`;
export const ROUTES_PREFIX = `${ROOT}routes/`;
export const MASTER_KEY = `${ROOT}master`;
export const HANDLE_IDS_KEY = `${ROOT}handle-ids`;

export const clusterKeys = {
  node: (nodeId: string) => `${NODES_PREFIX}${nodeId}`,
  nodeSettings: (nodeId: string) => `${NODE_SETTINGS_PREFIX}${nodeId}`,
  vserver: (vserverId: string) => `${VSERVERS_PREFIX}${vserverId}`,
  placement: (vserverId: string) => `${PLACEMENTS_PREFIX}${vserverId}`,
  running: (vserverId: string) => `${RUNNING_PREFIX}${vserverId}`,
  connections: (vserverId: string) => `${ROOT}connections/${vserverId}`,
  holder: (vserverId: string) => `${HOLDERS_PREFIX}${vserverId}`,
  migration: (vserverId: string) => `${MIGRATIONS_PREFIX}${vserverId}`,
  route: (vip: string) => `${ROUTES_PREFIX}${vip}`,
  vipClaim: (vip: string) => `${ROOT}claims/vip/${vip}`,
  volumeClaim: (volumeId: string) => `${ROOT}claims/volume/${volumeId}`,
  nameClaim: (name: string) => `${ROOT}claims/name/${name}`,
  filesystem: (volumeId: string) => `${FILESYSTEMS_PREFIX}${volumeId}`,
};

/** Node and vserver ids: short, lowercase, safe in keys, paths and URLs. */
export const ID_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;
/** A loopback-driver VIP: an IPv4 address in 127.0.0.0/8 (DESIGN.md "Network"). */
export const LOOPBACK_VIP_PATTERN =
  /^127\.(25[0-5]|2[0-4]\d|1?\d?\d)\.(25[0-5]|2[0-4]\d|1?\d?\d)\.(25[0-5]|2[0-4]\d|1?\d?\d)$/;

/**
 * A VIP: a unicast IPv4 address. Which ones work depends on the nodes' VIP driver: 127.0.0.0/8 with
 * loopback (the default), an address on a client subnet of the nodes' ports with the Linux driver.
 */
export function isVipAddress(text: string): boolean {
  if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(text)) return false;
  const octets = text.split(".").map(Number);
  const first = octets[0]!;
  return octets.every((o) => o <= 255) && first !== 0 && first < 224;
}

const id = z.string().regex(ID_PATTERN);
const label = z.string().min(1).max(LABEL_CHARS_MAX);
const count = z.number().int().nonnegative();
const port = z.number().int().min(1).max(65535);
const volumeId = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/);
const vip = z.string().refine(isVipAddress, "a unicast IPv4 address");

export const nodeRoleSchema = z.enum(["filer", "storage"]);
export const operatorStateSchema = z.enum(["enabled", "disabled", "draining"]);

export const nodeRecordSchema = z.object({
  nodeId: id,
  roles: z.array(nodeRoleSchema).min(1).max(2),
  vserversMax: count,
  loadPerCore: z.number().nonnegative(),
  memoryFreeBytes: count,
  reaches: z.array(label).max(256),
  /** The storage server this node runs, if it has the storage role. */
  storageServerId: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/)
    .nullable(),
  /** Where this node answers the admin API (empty when it does not). */
  adminUrl: z.string().max(LABEL_CHARS_MAX),
  startedAtMs: count,
  pid: count,
  /** host:port where the node takes live moves of vservers' state (empty: it takes none). */
  moveAddress: z.string().max(LABEL_CHARS_MAX).default(""),
  /** Free pages in its service-state page pool (see src/service/arena.ts). */
  statePagesFree: count.default(0),
  /** Its service-state page pool's bound (0: it has none). */
  statePagesMax: count.default(0),
  /** Its physical ports (the Linux VIP driver; none with loopback VIPs). */
  ports: z
    .array(
      z.object({
        nodeId: id,
        name: label,
        subnet: label.nullable(),
        up: z.boolean(),
        /** Absent in a record from before probes: link and use were the same. */
        linkUp: z.boolean().optional(),
        address: z.string().max(64).nullable().default(null),
        loadBytesPerSec: z.number().nonnegative(),
      }),
    )
    .max(64)
    .default([]),
  /** Which port each VIP held here is on (null while it has none). */
  vipPorts: z
    .array(z.object({ vip: label, port: label.nullable() }))
    .max(1024)
    .default([]),
  /** Each vserver served here: its service-state pages and the bytes of live records in them. */
  serviceState: z
    .array(z.object({ vserverId: label, pages: count, liveBytes: count }))
    .max(1024)
    .default([]),
});
export type NodeRecord = z.infer<typeof nodeRecordSchema>;

export const nodeSettingsSchema = z.object({ operatorState: operatorStateSchema, changedAtMs: count });
export type NodeSettings = z.infer<typeof nodeSettingsSchema>;

export const masterRecordSchema = z.object({ nodeId: id, sinceMs: count });
export type MasterRecord = z.infer<typeof masterRecordSchema>;

export const vserverRecordSchema = z.object({
  vserverId: id,
  name: label,
  /** The 32-bit vserver number that goes into its file handles; never reused. */
  handleId: z.number().int().min(1).max(0xffff_ffff),
  /** Its file-handle key, base64 of 32 random bytes: the same on every node that runs it. */
  handleKey: z.string().min(44).max(128),
  priority: z.number().int().min(-1_000_000).max(1_000_000),
  pinned: z.boolean(),
  vips: z.array(vip).min(VSERVER_VIPS_MIN).max(VSERVER_VIPS_MAX),
  volumes: z.array(volumeId).min(1).max(VSERVER_VOLUMES_MAX),
  /** exports(5)-style rules, as text (parsed by the agent that serves them). */
  exports: z.array(z.string().min(1).max(LABEL_CHARS_MAX)).min(1).max(64),
  nfsPort: port,
  mountPort: port,
});
export type VserverRecord = z.infer<typeof vserverRecordSchema>;

const blockedSchema = z.discriminatedUnion("code", [
  z.object({ code: z.literal("pinned-node-dead"), node: id }),
  z.object({ code: z.literal("no-node") }),
  z.object({ code: z.literal("no-capacity") }),
  z.object({ code: z.literal("cooldown"), untilMs: count }),
  z.object({ code: z.literal("unreachable"), missing: z.array(label).max(64) }),
]);

export const placementRecordSchema = z.object({
  node: id.nullable(),
  generation: count,
  sinceMs: count,
  blocked: blockedSchema.nullable(),
  /** Set by a live move's cutover: the request whose moved state the new node starts from. */
  liveMove: z.string().min(1).max(64).nullable().default(null),
});
export type PlacementRecord = z.infer<typeof placementRecordSchema>;

export const endpointSchema = z.object({
  address: z.string().max(LABEL_CHARS_MAX),
  nfsPort: port,
  mountPort: port,
  url: z.string().max(1024),
});

const endpointAddress = z.object({ ip: z.string().max(64), port });

/**
 * cluster/connections/<vserverId>: its clients' TCP connections, as its VIPs' holder last saw them.
 * Outside any lease, so the VIPs' next holder can tickle them even after the holder crashed.
 */
export const connectionsRecordSchema = z.object({
  nodeId: id,
  atMs: count,
  connections: z.array(z.object({ local: endpointAddress, remote: endpointAddress })).max(1024),
});
export type ConnectionsRecord = z.infer<typeof connectionsRecordSchema>;

/**
 * cluster/routes/<vip>: a VIP whose node is cut off from the VIP's subnet, answered and forwarded by
 * a router node (see net/subnet-route.ts). Written by the master, applied by the two nodes named.
 */
export const routeRecordSchema = z.object({
  vip: label,
  vserverId: id,
  subnet: label,
  routerNode: id,
  routerPort: label,
  routerViaPort: label,
  routerAddress: z.string().max(64),
  ownerNode: id,
  ownerViaPort: label,
  ownerAddress: z.string().max(64),
  viaSubnet: label,
  reason: z.string().max(LABEL_CHARS_MAX),
  sinceMs: count,
});
export type RouteRecord = z.infer<typeof routeRecordSchema>;

export const runningRecordSchema = z.object({
  nodeId: id,
  generation: count,
  endpoints: z.array(endpointSchema).max(VSERVER_VIPS_MAX),
  /** Owner epochs taken, by volume. */
  ownerEpochs: z.record(volumeId, count),
  sinceMs: count,
  /** The vserver's service-state arena: pages held and bytes of live records (what a live move copies). */
  statePages: count.default(0),
  stateLiveBytes: count.default(0),
  /** Whether it started from state moved live from another node. */
  liveFrom: id.nullable().default(null),
});
export type RunningRecord = z.infer<typeof runningRecordSchema>;

/**
 * The node that holds a vserver's volumes, from before it fences the previous owner until it has
 * stopped, committed and unmounted. A new owner waits for the key to go (a planned move is handed
 * over); it fences without waiting only when the holder's lease ran out or after a bounded wait.
 */
export const holderRecordSchema = z.object({ nodeId: id, generation: count, sinceMs: count });
export type HolderRecord = z.infer<typeof holderRecordSchema>;

export const migrationStateSchema = z.enum(["requested", "copying", "suspended", "done", "failed"]);
export type MigrationState = z.infer<typeof migrationStateSchema>;

/**
 * A live move (`vserver move --live`): written by the operator's request, then carried out and
 * updated by the node serving the vserver; the request id tells one request from the next.
 */
export const migrationRecordSchema = z.object({
  requestId: z.string().min(1).max(64),
  from: id,
  to: id,
  /** A pinned vserver moves only when forced. */
  force: z.boolean(),
  requestedAtMs: count,
  state: migrationStateSchema,
  /** Why it failed (and was rolled back), in words. */
  reason: z.string().max(1024).nullable(),
  rounds: count,
  pagesSent: count,
  bytesSent: count,
  /** From the suspend to the release of the volumes (the source's part of the client's stall). */
  suspendedMs: count,
  updatedAtMs: count,
});
export type MigrationRecord = z.infer<typeof migrationRecordSchema>;

export const claimSchema = z.object({ vserverId: id });
export type Claim = z.infer<typeof claimSchema>;

export const filesystemRecordSchema = z.object({ madeAtMs: count, madeBy: id });
export type FilesystemRecord = z.infer<typeof filesystemRecordSchema>;

export const handleIdsSchema = z.object({ next: z.number().int().min(1).max(0x1_0000_0000) });

/** The id at the end of a key under one of the prefixes above. */
export function idOfKey(prefix: string, key: string): string {
  return key.slice(prefix.length);
}
