import type { Logger } from "pino";
import { type Credentials, isFsError, type NodeRef, type Volume } from "../../fs/index.ts";
import type { RpcCall, RpcOutcome, RpcProgram } from "../../rpc/types.ts";
import { XdrWriter } from "../../xdr/index.ts";
import { type ExportTable, effectiveCredentials } from "../exports.ts";
import type { ProcedureMetrics } from "../metrics.ts";
import type { NfsMoreVolumes, NfsVolumeService } from "../procedure.ts";
import { MemoryMountList, type MountList } from "./mount-list.ts";

export const MOUNT_PROGRAM = 100005;
export const MOUNT_VERSION = 3;
const MNTPATHLEN = 1024;

export const MountProc = { NULL: 0, MNT: 1, DUMP: 2, UMNT: 3, UMNTALL: 4, EXPORT: 5 } as const;
type MountProcName = keyof typeof MountProc;

/** mountstat3 (RFC 1813 appendix I). */
const MountStat = {
  OK: 0,
  PERM: 1,
  NOENT: 2,
  IO: 5,
  ACCES: 13,
  NOTDIR: 20,
  INVAL: 22,
  NAMETOOLONG: 63,
  SERVERFAULT: 10006,
} as const;
const AUTH_FLAVORS = [1, 0];

export interface MountProgramOptions {
  readonly service: NfsVolumeService;
  /** The vserver's further volumes, exported as "/NAME" (see NfsMoreVolumes). */
  readonly more?: NfsMoreVolumes;
  readonly exports: () => ExportTable;
  readonly logger: Logger;
  readonly metrics: ProcedureMetrics;
  /** Where DUMP's records are kept (in memory when not given). */
  readonly mounts?: MountList;
}

const success = (w: XdrWriter): RpcOutcome => ({ kind: "success", body: [w.bytes()] });

/** Walks an export path ("/", "/a/b") from the root as the client: the handle MNT returns. */
async function resolvePath(volume: Volume, cred: Credentials, path: string): Promise<NodeRef> {
  let ref = volume.rootRef;
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    ref = (await volume.lookup(cred, ref, part)).ref;
  }
  const attr = await volume.getattr(ref);
  if (attr.type !== "dir") throw Object.assign(new Error("not a directory"), { mountStat: MountStat.NOTDIR });
  return ref;
}

function mountStatOf(error: unknown): number {
  if (
    typeof error === "object" &&
    error !== null &&
    "mountStat" in error &&
    typeof error.mountStat === "number"
  ) {
    return error.mountStat;
  }
  if (isFsError(error)) {
    const byCode: Partial<Record<string, number>> = {
      NOENT: MountStat.NOENT,
      NOTDIR: MountStat.NOTDIR,
      ACCES: MountStat.ACCES,
      PERM: MountStat.PERM,
      NAMETOOLONG: MountStat.NAMETOOLONG,
      INVAL: MountStat.INVAL,
      IO: MountStat.IO,
    };
    return byCode[error.code] ?? MountStat.SERVERFAULT;
  }
  throw error;
}

/** MOUNT version 3: hands out the root handle of the export to admitted clients. */
export function mountProgram(options: MountProgramOptions): RpcProgram {
  const log = options.logger.child({ component: "mount" });
  const mounts = options.mounts ?? new MemoryMountList();

  /** "/NAME/..." is in the volume exported as NAME, if there is one; anything else is in the first. */
  const exportOf = (path: string): { service: NfsVolumeService; rest: string } => {
    const parts = path.split("/").filter((part) => part !== "" && part !== ".");
    const named = parts[0] === undefined ? undefined : options.more?.get(parts[0]);
    return named === undefined
      ? { service: options.service, rest: path }
      : { service: named, rest: parts.slice(1).join("/") };
  };

  const procedures: { readonly [P in MountProcName]: (call: RpcCall) => Promise<RpcOutcome> } = {
    NULL: async () => success(new XdrWriter()),
    async MNT(call) {
      const path = call.args.string(MNTPATHLEN, "dirpath");
      const w = new XdrWriter();
      const rule = options.exports().ruleFor(call.client.address);
      if (rule === undefined) {
        log.info({ client: call.client.address, path }, "mount refused: no export rule admits the client");
        return success(w.u32(MountStat.ACCES));
      }
      try {
        const { service, rest } = exportOf(path);
        const ref = await resolvePath(service.volume, effectiveCredentials(rule, call.credential), rest);
        const handle = service.handles.encode({
          vserverId: service.vserverId,
          volumeId: service.volumeId,
          ref,
        });
        mounts.add(call.client.address, path);
        w.u32(MountStat.OK).opaque(handle).u32(AUTH_FLAVORS.length);
        for (const flavor of AUTH_FLAVORS) w.u32(flavor);
        return success(w);
      } catch (error) {
        return success(w.u32(mountStatOf(error)));
      }
    },
    async DUMP() {
      const w = new XdrWriter();
      for (const { host, path } of mounts.list()) w.bool(true).string(host).string(path);
      return success(w.bool(false));
    },
    async UMNT(call) {
      const path = call.args.string(MNTPATHLEN, "dirpath");
      mounts.remove(call.client.address, path);
      return success(new XdrWriter());
    },
    async UMNTALL(call) {
      mounts.removeHost(call.client.address);
      return success(new XdrWriter());
    },
    async EXPORT() {
      const w = new XdrWriter();
      const groups = (): XdrWriter => {
        for (const rule of options.exports().rules) w.bool(true).string(rule.clients);
        return w.bool(false);
      };
      w.bool(true).string("/");
      groups();
      for (const name of options.more?.keys() ?? []) {
        w.bool(true).string(`/${name}`);
        groups();
      }
      return success(w.bool(false));
    },
  };

  const byNumber = new Map<number, [MountProcName, (call: RpcCall) => Promise<RpcOutcome>]>(
    (Object.keys(procedures) as MountProcName[]).map((name) => [MountProc[name], [name, procedures[name]]]),
  );

  return {
    program: MOUNT_PROGRAM,
    version: MOUNT_VERSION,
    name: "mount",
    handler(procedure) {
      const entry = byNumber.get(procedure);
      if (entry === undefined) return undefined;
      const [name, run] = entry;
      return async (call) => {
        const started = performance.now();
        try {
          return await run(call);
        } finally {
          options.metrics.record(`MOUNT.${name}`, performance.now() - started, false);
        }
      };
    },
  };
}
