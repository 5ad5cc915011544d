/**
 * The operator's changes to the desired state: vservers, their VIPs and exports, node settings. Each
 * change is one store transaction that checks what it relies on (a VIP, volume or name is claimed by
 * one vserver only, by create-only claim keys; a record is unchanged since it was read), so two
 * operators racing never leave the cluster half-changed. Errors say what is wrong in words an
 * operator can act on; their codes map to HTTP statuses and exit codes.
 */
import { randomBytes } from "node:crypto";
import { ExportRuleError, parseExportRule } from "../nfs/exports.ts";
import { getVolume, VolumeError } from "../storage/volumes.ts";
import type { Compare, CoordinationStore, TxnOp } from "../store/index.ts";
import {
  claimSchema,
  clusterKeys,
  decodeRecord,
  encodeRecord,
  HANDLE_IDS_KEY,
  handleIdsSchema,
  ID_PATTERN,
  isVipAddress,
  nodeSettingsSchema,
  type PlacementRecord,
  placementRecordSchema,
  type VserverRecord,
  vserverRecordSchema,
} from "./catalog.ts";
import { type ClusterSnapshot, readClusterSnapshot } from "./cluster-view.ts";
import {
  LABEL_CHARS_MAX,
  type OperatorState,
  VSERVER_VIPS_MAX,
  VSERVER_VIPS_MIN,
  VSERVER_VOLUMES_MAX,
} from "./model.ts";

export type AdminErrorCode = "INVALID" | "NOT_FOUND" | "CONFLICT" | "UNAVAILABLE";

export class AdminError extends Error {
  override name = "AdminError";
  readonly code: AdminErrorCode;
  constructor(code: AdminErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

export const NFS_PORT_DEFAULT = 2049;
export const MOUNT_PORT_DEFAULT = 20048;
export const EXPORT_DEFAULT = "127.0.0.0/8(rw,no_root_squash)";
/** Attempts of a read-check-write change before it gives up: someone else keeps changing the record. */
const CAS_ATTEMPTS_MAX = 20;

export interface CreateVserverRequest {
  readonly id: string;
  readonly name?: string;
  readonly priority?: number;
  readonly pinned?: boolean;
  readonly vips: readonly string[];
  readonly volumes: readonly string[];
  readonly exports?: readonly string[];
  readonly nfsPort?: number;
  readonly mountPort?: number;
}

function checkId(id: string, what: string): void {
  if (!ID_PATTERN.test(id))
    throw new AdminError(
      "INVALID",
      `${what} "${id}": use 1 to 63 of a-z, 0-9, "-" and "_", starting with a letter or digit`,
    );
}

function checkVip(vip: string): void {
  if (!isVipAddress(vip))
    throw new AdminError(
      "INVALID",
      `VIP "${vip}": not a unicast IPv4 address (127.0.0.0/8 with the loopback driver, an address on a client subnet with the Linux one)`,
    );
}

function checkExport(rule: string): void {
  try {
    parseExportRule(rule);
  } catch (error) {
    if (error instanceof ExportRuleError) throw new AdminError("INVALID", error.message);
    throw error;
  }
}

function checkPriority(priority: number): void {
  if (!Number.isInteger(priority) || Math.abs(priority) > 1_000_000)
    throw new AdminError("INVALID", `priority ${priority}: a whole number from -1000000 to 1000000`);
}

function checkPort(port: number, what: string): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new AdminError("INVALID", `${what} ${port}: a port from 1 to 65535`);
}

/** Who claims a VIP, volume or name now, if anyone. */
async function claimant(store: CoordinationStore, key: string): Promise<string | undefined> {
  const kv = await store.get(key);
  return kv === undefined ? undefined : decodeRecord(claimSchema, key, kv.value).vserverId;
}

const claimOp = (key: string, vserverId: string): TxnOp => ({
  op: "put",
  key,
  value: encodeRecord(claimSchema, { vserverId }),
});

/** Makes a vserver; the master places it on the least-loaded node that can take it. */
export async function createVserver(
  store: CoordinationStore,
  request: CreateVserverRequest,
): Promise<VserverRecord> {
  checkId(request.id, "vserver id");
  const name = request.name ?? request.id;
  if (name.length === 0 || name.length > LABEL_CHARS_MAX)
    throw new AdminError("INVALID", `name: 1 to ${LABEL_CHARS_MAX} characters`);
  const vips = [...new Set(request.vips)];
  if (vips.length !== request.vips.length) throw new AdminError("INVALID", "a VIP is listed twice");
  if (vips.length < VSERVER_VIPS_MIN || vips.length > VSERVER_VIPS_MAX)
    throw new AdminError(
      "INVALID",
      `a vserver has ${VSERVER_VIPS_MIN} to ${VSERVER_VIPS_MAX} VIPs (got ${vips.length})`,
    );
  for (const vip of vips) checkVip(vip);
  if (request.volumes.length < 1 || request.volumes.length > VSERVER_VOLUMES_MAX)
    throw new AdminError(
      "INVALID",
      `a vserver has 1 to ${VSERVER_VOLUMES_MAX} volumes (got ${request.volumes.length})`,
    );
  if (new Set(request.volumes).size !== request.volumes.length)
    throw new AdminError("INVALID", "a volume is listed twice");
  const exports =
    request.exports === undefined || request.exports.length === 0 ? [EXPORT_DEFAULT] : [...request.exports];
  for (const rule of exports) checkExport(rule);
  const priority = request.priority ?? 0;
  checkPriority(priority);
  const nfsPort = request.nfsPort ?? NFS_PORT_DEFAULT;
  const mountPort = request.mountPort ?? MOUNT_PORT_DEFAULT;
  checkPort(nfsPort, "NFS port");
  checkPort(mountPort, "MOUNT port");
  for (const volumeId of request.volumes) {
    try {
      await getVolume(store, volumeId);
    } catch (error) {
      if (error instanceof VolumeError && error.code === "NOT_FOUND")
        throw new AdminError(
          "NOT_FOUND",
          `volume ${volumeId} does not exist (flotilla volume create ${volumeId} --size ...)`,
        );
      throw error;
    }
  }
  for (let attempt = 0; attempt < CAS_ATTEMPTS_MAX; attempt++) {
    // Name the first conflict precisely; the transaction below is what guarantees there is none.
    if ((await store.get(clusterKeys.vserver(request.id))) !== undefined)
      throw new AdminError("CONFLICT", `vserver ${request.id} already exists`);
    for (const vip of vips) {
      const owner = await claimant(store, clusterKeys.vipClaim(vip));
      if (owner !== undefined)
        throw new AdminError("CONFLICT", `VIP ${vip} is already used by vserver ${owner}`);
    }
    for (const volumeId of request.volumes) {
      const owner = await claimant(store, clusterKeys.volumeClaim(volumeId));
      if (owner !== undefined)
        throw new AdminError("CONFLICT", `volume ${volumeId} already belongs to vserver ${owner}`);
    }
    const nameOwner = await claimant(store, clusterKeys.nameClaim(name));
    if (nameOwner !== undefined)
      throw new AdminError("CONFLICT", `the name ${name} is taken by vserver ${nameOwner}`);
    const ids = await store.get(HANDLE_IDS_KEY);
    const handleId = ids === undefined ? 1 : decodeRecord(handleIdsSchema, ids.key, ids.value).next;
    if (handleId > 0xffff_ffff) throw new AdminError("CONFLICT", "every vserver number has been used");
    const record: VserverRecord = {
      vserverId: request.id,
      name,
      handleId,
      handleKey: randomBytes(32).toString("base64"),
      priority,
      pinned: request.pinned ?? false,
      vips,
      volumes: [...request.volumes],
      exports,
      nfsPort,
      mountPort,
    };
    const placement: PlacementRecord = {
      node: null,
      generation: 0,
      sinceMs: Date.now(),
      blocked: null,
      liveMove: null,
    };
    const claims = [
      ...vips.map((vip) => clusterKeys.vipClaim(vip)),
      ...request.volumes.map((v) => clusterKeys.volumeClaim(v)),
      clusterKeys.nameClaim(name),
    ];
    const compares: Compare[] = [
      { key: clusterKeys.vserver(request.id), target: "create", equals: 0 },
      { key: clusterKeys.placement(request.id), target: "create", equals: 0 },
      ...claims.map((key): Compare => ({ key, target: "create", equals: 0 })),
      ids === undefined
        ? { key: HANDLE_IDS_KEY, target: "create", equals: 0 }
        : { key: HANDLE_IDS_KEY, target: "mod", equals: ids.modRevision },
    ];
    const result = await store.txn(compares, [
      { op: "put", key: clusterKeys.vserver(request.id), value: encodeRecord(vserverRecordSchema, record) },
      {
        op: "put",
        key: clusterKeys.placement(request.id),
        value: encodeRecord(placementRecordSchema, placement),
      },
      ...claims.map((key) => claimOp(key, request.id)),
      { op: "put", key: HANDLE_IDS_KEY, value: encodeRecord(handleIdsSchema, { next: handleId + 1 }) },
    ]);
    if (result.succeeded) return record;
  }
  throw new AdminError("UNAVAILABLE", `vserver ${request.id}: the cluster kept changing; try again`);
}

async function readVserver(
  store: CoordinationStore,
  vserverId: string,
): Promise<{ record: VserverRecord; modRevision: number }> {
  checkId(vserverId, "vserver id");
  const kv = await store.get(clusterKeys.vserver(vserverId));
  if (kv === undefined) throw new AdminError("NOT_FOUND", `vserver ${vserverId} does not exist`);
  return { record: decodeRecord(vserverRecordSchema, kv.key, kv.value), modRevision: kv.modRevision };
}

/**
 * Read, change, write back if unchanged; retried on a race. `change` may return extra compares and
 * operations (claims) to go with the write.
 */
async function updateVserver(
  store: CoordinationStore,
  vserverId: string,
  change: (record: VserverRecord) =>
    | Promise<{ record: VserverRecord; compares?: Compare[]; ops?: TxnOp[] }>
    | {
        record: VserverRecord;
        compares?: Compare[];
        ops?: TxnOp[];
      },
): Promise<VserverRecord> {
  for (let attempt = 0; attempt < CAS_ATTEMPTS_MAX; attempt++) {
    const { record, modRevision } = await readVserver(store, vserverId);
    const next = await change(record);
    const key = clusterKeys.vserver(vserverId);
    const result = await store.txn(
      [{ key, target: "mod", equals: modRevision }, ...(next.compares ?? [])],
      [{ op: "put", key, value: encodeRecord(vserverRecordSchema, next.record) }, ...(next.ops ?? [])],
    );
    if (result.succeeded) return next.record;
  }
  throw new AdminError("UNAVAILABLE", `vserver ${vserverId}: it kept changing; try again`);
}

/** Deletes a vserver: its node stops serving it; its volume stays (delete that separately). */
export async function deleteVserver(store: CoordinationStore, vserverId: string): Promise<void> {
  for (let attempt = 0; attempt < CAS_ATTEMPTS_MAX; attempt++) {
    const { record, modRevision } = await readVserver(store, vserverId);
    const claims = [
      ...record.vips.map((vip) => clusterKeys.vipClaim(vip)),
      ...record.volumes.map((v) => clusterKeys.volumeClaim(v)),
      clusterKeys.nameClaim(record.name),
    ];
    const result = await store.txn(
      [{ key: clusterKeys.vserver(vserverId), target: "mod", equals: modRevision }],
      [
        { op: "delete", key: clusterKeys.vserver(vserverId) },
        { op: "delete", key: clusterKeys.placement(vserverId) },
        // Its clients' connections: nobody will hold its VIPs for them again.
        { op: "delete", key: clusterKeys.connections(vserverId) },
        ...claims.map((key): TxnOp => ({ op: "delete", key })),
      ],
    );
    if (result.succeeded) return;
  }
  throw new AdminError("UNAVAILABLE", `vserver ${vserverId}: it kept changing; try again`);
}

export function setPinned(
  store: CoordinationStore,
  vserverId: string,
  pinned: boolean,
): Promise<VserverRecord> {
  return updateVserver(store, vserverId, (record) => ({ record: { ...record, pinned } }));
}

export function setPriority(
  store: CoordinationStore,
  vserverId: string,
  priority: number,
): Promise<VserverRecord> {
  checkPriority(priority);
  return updateVserver(store, vserverId, (record) => ({ record: { ...record, priority } }));
}

export function addVip(store: CoordinationStore, vserverId: string, vip: string): Promise<VserverRecord> {
  checkVip(vip);
  return updateVserver(store, vserverId, async (record) => {
    if (record.vips.includes(vip))
      throw new AdminError("CONFLICT", `vserver ${vserverId} already has VIP ${vip}`);
    if (record.vips.length >= VSERVER_VIPS_MAX)
      throw new AdminError("INVALID", `vserver ${vserverId} has ${VSERVER_VIPS_MAX} VIPs, the most it may`);
    const owner = await claimant(store, clusterKeys.vipClaim(vip));
    if (owner !== undefined)
      throw new AdminError("CONFLICT", `VIP ${vip} is already used by vserver ${owner}`);
    const key = clusterKeys.vipClaim(vip);
    return {
      record: { ...record, vips: [...record.vips, vip] },
      compares: [{ key, target: "create", equals: 0 }],
      ops: [claimOp(key, vserverId)],
    };
  });
}

export function removeVip(store: CoordinationStore, vserverId: string, vip: string): Promise<VserverRecord> {
  return updateVserver(store, vserverId, (record) => {
    if (!record.vips.includes(vip))
      throw new AdminError("NOT_FOUND", `vserver ${vserverId} has no VIP ${vip}`);
    if (record.vips.length <= VSERVER_VIPS_MIN)
      throw new AdminError(
        "INVALID",
        `vserver ${vserverId} needs at least ${VSERVER_VIPS_MIN} VIPs; add another first`,
      );
    return {
      record: { ...record, vips: record.vips.filter((v) => v !== vip) },
      ops: [{ op: "delete", key: clusterKeys.vipClaim(vip) }],
    };
  });
}

export function addExport(store: CoordinationStore, vserverId: string, rule: string): Promise<VserverRecord> {
  checkExport(rule);
  return updateVserver(store, vserverId, (record) => {
    if (record.exports.includes(rule))
      throw new AdminError("CONFLICT", `vserver ${vserverId} already has export ${rule}`);
    if (record.exports.length >= 64)
      throw new AdminError("INVALID", `vserver ${vserverId} has 64 export rules, the most it may`);
    return { record: { ...record, exports: [...record.exports, rule] } };
  });
}

export function removeExport(
  store: CoordinationStore,
  vserverId: string,
  rule: string,
): Promise<VserverRecord> {
  return updateVserver(store, vserverId, (record) => {
    if (!record.exports.includes(rule))
      throw new AdminError("NOT_FOUND", `vserver ${vserverId} has no export ${rule}`);
    if (record.exports.length === 1)
      throw new AdminError(
        "INVALID",
        `vserver ${vserverId} needs at least one export rule; add another first`,
      );
    return { record: { ...record, exports: record.exports.filter((r) => r !== rule) } };
  });
}

/**
 * Whether `nodeId` can take `vserverId` now: it exists, is alive, is a filer, is enabled, and is not
 * where the vserver already is. Throws AdminError saying which it is not.
 */
export function checkMoveTarget(snapshot: ClusterSnapshot, vserverId: string, nodeId: string): void {
  const vserver = snapshot.vservers.get(vserverId);
  if (vserver === undefined) throw new AdminError("NOT_FOUND", `vserver ${vserverId} does not exist`);
  const node = snapshot.nodes.get(nodeId);
  if (node === undefined) {
    const known = snapshot.settings.has(nodeId);
    throw new AdminError(
      known ? "CONFLICT" : "NOT_FOUND",
      known
        ? `node ${nodeId} is dead (no membership lease); move to a live node`
        : `node ${nodeId} does not exist`,
    );
  }
  if (!node.roles.includes("filer")) throw new AdminError("CONFLICT", `node ${nodeId} has no filer role`);
  const state = snapshot.settings.get(nodeId)?.operatorState ?? "enabled";
  if (state !== "enabled") throw new AdminError("CONFLICT", `node ${nodeId} is ${state}; enable it first`);
  if (snapshot.placements.get(vserverId)?.record.node === nodeId)
    throw new AdminError("CONFLICT", `vserver ${vserverId} is already on ${nodeId}`);
}

/**
 * Places a vserver on `nodeId` with the next generation, if its placement is still the one at
 * `modRevision` (the live move's cutover, which names its request; an operator's move reads it
 * first). Undefined if it changed.
 */
export async function placeVserver(
  store: CoordinationStore,
  vserverId: string,
  nodeId: string,
  current: { readonly record: PlacementRecord; readonly modRevision: number } | undefined,
  liveMove: string | null = null,
): Promise<PlacementRecord | undefined> {
  const key = clusterKeys.placement(vserverId);
  const next: PlacementRecord = {
    node: nodeId,
    generation: (current?.record.generation ?? 0) + 1,
    sinceMs: Date.now(),
    blocked: null,
    liveMove,
  };
  const result = await store.txn(
    [
      current === undefined
        ? { key, target: "create", equals: 0 }
        : { key, target: "mod", equals: current.modRevision },
    ],
    [{ op: "put", key, value: encodeRecord(placementRecordSchema, next) }],
  );
  return result.succeeded ? next : undefined;
}

/** An operator's move: to a live, enabled filer node, now (no cooldown applies to an operator). */
export async function moveVserver(
  store: CoordinationStore,
  vserverId: string,
  nodeId: string,
): Promise<PlacementRecord> {
  checkId(nodeId, "node id");
  for (let attempt = 0; attempt < CAS_ATTEMPTS_MAX; attempt++) {
    const snapshot = await readClusterSnapshot(store);
    checkMoveTarget(snapshot, vserverId, nodeId);
    const placed = await placeVserver(store, vserverId, nodeId, snapshot.placements.get(vserverId));
    if (placed !== undefined) return placed;
  }
  throw new AdminError("UNAVAILABLE", `vserver ${vserverId}: its placement kept changing; try again`);
}

/** enable | disable | drain (see OperatorState). */
export async function setNodeState(
  store: CoordinationStore,
  nodeId: string,
  operatorState: OperatorState,
): Promise<void> {
  checkId(nodeId, "node id");
  const key = clusterKeys.nodeSettings(nodeId);
  const kv = await store.get(key);
  if (kv === undefined) throw new AdminError("NOT_FOUND", `node ${nodeId} has never joined the cluster`);
  const result = await store.txn(
    [{ key, target: "mod", equals: kv.modRevision }],
    [{ op: "put", key, value: encodeRecord(nodeSettingsSchema, { operatorState, changedAtMs: Date.now() }) }],
  );
  if (!result.succeeded)
    throw new AdminError("UNAVAILABLE", `node ${nodeId}: its settings changed meanwhile; try again`);
}

/** The vserver a volume belongs to, if any: a claimed volume cannot be deleted. */
export function volumeOwner(store: CoordinationStore, volumeId: string): Promise<string | undefined> {
  return claimant(store, clusterKeys.volumeClaim(volumeId));
}
