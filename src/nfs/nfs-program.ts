import assert from "node:assert/strict";
import type { Logger } from "pino";
import { FsError, NFS3_STATUS } from "../fs/index.ts";
import type { RpcCall, RpcOutcome, RpcProgram } from "../rpc/types.ts";
import { crc32 } from "../util/crc32.ts";
import { XdrWriter } from "../xdr/index.ts";
import type { DuplicateRequestCache } from "./dup-cache.ts";
import { type ExportRule, type ExportTable, effectiveCredentials } from "./exports.ts";
import type { ProcedureMetrics } from "./metrics.ts";
import { NFS_PROGRAM, NFS_VERSION, NfsProc, type NfsProcName } from "./nfs3.ts";
import { access } from "./proc/access.ts";
import { commit } from "./proc/commit.ts";
import { create } from "./proc/create.ts";
import { fsinfo } from "./proc/fsinfo.ts";
import { fsstat } from "./proc/fsstat.ts";
import { getattr } from "./proc/getattr.ts";
import { link } from "./proc/link.ts";
import { lookup } from "./proc/lookup.ts";
import { mkdir } from "./proc/mkdir.ts";
import { mknod } from "./proc/mknod.ts";
import { nullProc } from "./proc/null.ts";
import { pathconf } from "./proc/pathconf.ts";
import { read } from "./proc/read.ts";
import { readdir } from "./proc/readdir.ts";
import { readdirplus } from "./proc/readdirplus.ts";
import { readlink } from "./proc/readlink.ts";
import { remove } from "./proc/remove.ts";
import { rename } from "./proc/rename.ts";
import { rmdir } from "./proc/rmdir.ts";
import { setattr } from "./proc/setattr.ts";
import { symlink } from "./proc/symlink.ts";
import { write } from "./proc/write.ts";
import {
  type AnyNfsProcedure,
  type NfsMoreVolumes,
  NfsRequest,
  type NfsVolumeService,
  serviceForArgs,
} from "./procedure.ts";

/** Every procedure of NFS v3: the type makes a missing one a compile error. */
const PROCEDURES: { readonly [P in NfsProcName]: AnyNfsProcedure } = {
  NULL: nullProc,
  GETATTR: getattr,
  SETATTR: setattr,
  LOOKUP: lookup,
  ACCESS: access,
  READLINK: readlink,
  READ: read,
  WRITE: write,
  CREATE: create,
  MKDIR: mkdir,
  SYMLINK: symlink,
  MKNOD: mknod,
  REMOVE: remove,
  RMDIR: rmdir,
  RENAME: rename,
  LINK: link,
  READDIR: readdir,
  READDIRPLUS: readdirplus,
  FSSTAT: fsstat,
  FSINFO: fsinfo,
  PATHCONF: pathconf,
  COMMIT: commit,
};

const BY_NUMBER = new Map<number, AnyNfsProcedure>(
  (Object.keys(PROCEDURES) as NfsProcName[]).map((name) => [NfsProc[name], PROCEDURES[name]]),
);

/** A rule that admits nobody: failures for unadmitted clients carry no attributes. */
const NOBODY: ExportRule = {
  clients: "",
  access: "ro",
  squash: "all_squash",
  anonUid: 65534,
  anonGid: 65534,
  sync: true,
};

export interface NfsProgramOptions {
  readonly service: NfsVolumeService;
  /** The vserver's further volumes, by export name (see NfsMoreVolumes). */
  readonly more?: NfsMoreVolumes;
  /** The export rules in force (read per call, so they can change while serving). */
  readonly exports: () => ExportTable;
  readonly logger: Logger;
  readonly metrics: ProcedureMetrics;
  readonly dupCache: DuplicateRequestCache<RpcOutcome>;
  /** Told of every call, for the vserver's client table. */
  readonly onCall?: (client: string) => void;
}

function statusOf(outcome: RpcOutcome): number | undefined {
  if (outcome.kind !== "success") return undefined;
  const first = outcome.body[0];
  if (first === undefined || first.length < 4) return undefined;
  return new DataView(first.buffer, first.byteOffset, 4).getUint32(0);
}

/** NFS version 3 over the RPC layer, for one vserver's volume. */
export function nfsProgram(options: NfsProgramOptions): RpcProgram {
  const log = options.logger.child({ component: "nfs" });

  async function execute(
    proc: AnyNfsProcedure,
    args: unknown,
    call: RpcCall,
    argBytes: Uint8Array,
  ): Promise<RpcOutcome> {
    const rule = options.exports().ruleFor(call.client.address);
    const admitted = rule !== undefined;
    const req = new NfsRequest(
      serviceForArgs(options.service, options.more, argBytes),
      call,
      rule ?? NOBODY,
      effectiveCredentials(rule ?? NOBODY, call.credential),
      admitted,
    );
    const w = new XdrWriter();
    try {
      if (!admitted) throw new FsError("ACCES", `no export rule admits ${call.client.address}`);
      if (proc.mutating && req.rule.access === "ro") throw new FsError("ROFS", "the export is read-only");
      const extra = await proc.run(req, args, w);
      if (proc.metadataChange && req.rule.sync) await req.volume.sync();
      const body = extra === undefined ? [w.bytes()] : [w.bytes(), ...extra];
      return req.sent === undefined ? { kind: "success", body } : { kind: "success", body, sent: req.sent };
    } catch (error) {
      // The reply that would have carried a reused buffer is not sent: the buffer is free at once.
      req.sent?.();
      if (!(error instanceof FsError)) throw error;
      if (log.isLevelEnabled("debug"))
        log.debug({ proc: proc.name, code: error.code, err: error.message }, "nfs error");
      const f = new XdrWriter();
      f.u32(NFS3_STATUS[error.code]);
      await proc.failure(req, args, f);
      return { kind: "success", body: [f.bytes()] };
    }
  }

  async function dispatch(proc: AnyNfsProcedure, call: RpcCall): Promise<RpcOutcome> {
    const started = performance.now();
    let outcome: RpcOutcome | undefined;
    let bytesIn = 0;
    options.onCall?.(call.client.address);
    try {
      const argBytes = call.args.rest();
      bytesIn = argBytes.length;
      const args = proc.decode(call.args);
      if (!proc.mutating) outcome = await execute(proc, args, call, argBytes);
      else {
        const key = `${call.client.address}|${call.xid}|${call.procedure}|${crc32(argBytes)}|${argBytes.length}`;
        outcome = await options.dupCache.run(
          key,
          () => execute(proc, args, call, argBytes),
          (reply) =>
            statusOf(reply) === NFS3_STATUS.JUKEBOX
              ? null
              : reply.kind === "success"
                ? reply.body.reduce((n, b) => n + b.length, 64)
                : 64,
        );
      }
      // A cached reply may be sent again later: its body must never be a reused buffer.
      assert(
        !proc.mutating || outcome.kind !== "success" || outcome.sent === undefined,
        "cached replies own their bytes",
      );
      return outcome;
    } finally {
      const status = outcome === undefined ? undefined : statusOf(outcome);
      const bytesOut = outcome?.kind === "success" ? outcome.body.reduce((n, b) => n + b.length, 0) : 0;
      const failed = status !== 0 && proc.name !== "NULL";
      options.metrics.record(proc.name, performance.now() - started, failed, bytesIn, bytesOut);
    }
  }

  return {
    program: NFS_PROGRAM,
    version: NFS_VERSION,
    name: "nfs",
    handler(procedure) {
      const proc = BY_NUMBER.get(procedure);
      return proc === undefined ? undefined : (call) => dispatch(proc, call);
    },
  };
}
