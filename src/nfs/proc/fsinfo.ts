import { FILE_BYTES_MAX } from "../../fs/index.ts";
import {
  DIR_BYTES_PREF,
  FSF3_CANSETTIME,
  FSF3_HOMOGENEOUS,
  FSF3_LINK,
  FSF3_SYMLINK,
  NFS3_OK,
  TRANSFER_BYTES_MAX,
  TRANSFER_BYTES_PREF,
} from "../nfs3.ts";
import type { NfsProcedure } from "../procedure.ts";
import { readFh, writePostOpAttr, writeTime } from "../xdr3.ts";

interface FsinfoArgs {
  readonly root: Uint8Array;
}

/** FSINFO (RFC 1813 3.3.19): transfer sizes (1 MiB), limits and properties. */
export const fsinfo: NfsProcedure<FsinfoArgs> = {
  name: "FSINFO",
  mutating: false,
  metadataChange: false,
  decode: (r) => ({ root: readFh(r) }),
  async run(req, args, w) {
    const attr = await req.volume.getattr(req.resolve(args.root));
    w.u32(NFS3_OK);
    writePostOpAttr(w, attr, req.fsid);
    w.u32(TRANSFER_BYTES_MAX).u32(TRANSFER_BYTES_PREF).u32(4096);
    w.u32(TRANSFER_BYTES_MAX).u32(TRANSFER_BYTES_PREF).u32(4096);
    w.u32(DIR_BYTES_PREF).u64(FILE_BYTES_MAX);
    writeTime(w, { sec: 0, nsec: 1 });
    w.u32(FSF3_LINK | FSF3_SYMLINK | FSF3_HOMOGENEOUS | FSF3_CANSETTIME);
    return undefined;
  },
  async failure(req, args, w) {
    writePostOpAttr(w, await req.attrsIfAny(args.root), req.fsid);
  },
};
