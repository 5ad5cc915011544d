import type { Attr, CreateAttrs, FileType, SetAttrRequest, Timespec, Wcc, WccAttr } from "../fs/index.ts";
import { XdrError, type XdrReader, type XdrWriter } from "../xdr/index.ts";
import { Ftype3, NAME_WIRE_BYTES_MAX, NFS3_FHSIZE, TimeHow } from "./nfs3.ts";

/** Encoders and decoders of the structures RFC 1813 section 2.6 defines and many procedures share. */

const FTYPE_OF: Record<FileType, number> = {
  reg: Ftype3.REG,
  dir: Ftype3.DIR,
  blk: Ftype3.BLK,
  chr: Ftype3.CHR,
  lnk: Ftype3.LNK,
  sock: Ftype3.SOCK,
  fifo: Ftype3.FIFO,
};

export function ftypeOf(type: FileType): number {
  return FTYPE_OF[type];
}

export function writeTime(w: XdrWriter, t: Timespec): void {
  w.u32(Math.min(t.sec, 0xffffffff)).u32(t.nsec);
}

export function readTime(r: XdrReader): Timespec {
  const sec = r.u32();
  const nsec = r.u32();
  if (nsec > 999_999_999) throw new XdrError(`nfstime3 with ${nsec} nanoseconds`);
  return { sec, nsec };
}

/** fattr3; `fsid` names the volume. */
export function writeFattr(w: XdrWriter, a: Attr, fsid: bigint): void {
  w.u32(FTYPE_OF[a.type])
    .u32(a.mode & 0o7777)
    .u32(a.nlink)
    .u32(a.uid)
    .u32(a.gid);
  w.u64(a.size).u64(a.usedBytes).u32(a.rdev.major).u32(a.rdev.minor).u64(fsid).u64(a.fileid);
  writeTime(w, a.atime);
  writeTime(w, a.mtime);
  writeTime(w, a.ctime);
}

export function writePostOpAttr(w: XdrWriter, a: Attr | undefined, fsid: bigint): void {
  w.bool(a !== undefined);
  if (a !== undefined) writeFattr(w, a, fsid);
}

function writePreOpAttr(w: XdrWriter, a: WccAttr | undefined): void {
  w.bool(a !== undefined);
  if (a === undefined) return;
  w.u64(a.size);
  writeTime(w, a.mtime);
  writeTime(w, a.ctime);
}

/** wcc_data: both halves optional, as a failure may have neither. */
export function writeWcc(w: XdrWriter, wcc: Partial<Wcc> | undefined, fsid: bigint): void {
  writePreOpAttr(w, wcc?.before);
  writePostOpAttr(w, wcc?.after, fsid);
}

export function writePostOpFh(w: XdrWriter, fh: Uint8Array | undefined): void {
  w.bool(fh !== undefined);
  if (fh !== undefined) w.opaque(fh);
}

export function readFh(r: XdrReader): Uint8Array {
  return r.opaque(NFS3_FHSIZE, "nfs_fh3");
}

export function readName(r: XdrReader): string {
  return r.string(NAME_WIRE_BYTES_MAX, "filename3");
}

export interface DirOpArgs {
  readonly dir: Uint8Array;
  readonly name: string;
}

export function readDirOpArgs(r: XdrReader): DirOpArgs {
  return { dir: readFh(r), name: readName(r) };
}

function readSetTime(r: XdrReader): Timespec | "server" | undefined {
  const how = r.enumOf(
    [TimeHow.DONT_CHANGE, TimeHow.SET_TO_SERVER_TIME, TimeHow.SET_TO_CLIENT_TIME],
    "time_how",
  );
  if (how === TimeHow.DONT_CHANGE) return undefined;
  if (how === TimeHow.SET_TO_SERVER_TIME) return "server";
  return readTime(r);
}

/** sattr3, as the file system's setattr request (absent fields are left alone). */
export function readSattr(r: XdrReader): SetAttrRequest & CreateAttrs {
  const mode = r.optional(() => r.u32());
  const uid = r.optional(() => r.u32());
  const gid = r.optional(() => r.u32());
  const size = r.optional(() => r.u64Number("size"));
  const atime = readSetTime(r);
  const mtime = readSetTime(r);
  return {
    ...(mode === undefined ? {} : { mode }),
    ...(uid === undefined ? {} : { uid }),
    ...(gid === undefined ? {} : { gid }),
    ...(size === undefined ? {} : { size }),
    ...(atime === undefined ? {} : { atime }),
    ...(mtime === undefined ? {} : { mtime }),
  };
}
