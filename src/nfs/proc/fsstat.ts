import { NFS3_OK } from "../nfs3.ts";
import type { NfsProcedure } from "../procedure.ts";
import { readFh, writePostOpAttr } from "../xdr3.ts";

interface FsstatArgs {
  readonly root: Uint8Array;
}

/** FSSTAT (RFC 1813 3.3.18): space and files, total and free. */
export const fsstat: NfsProcedure<FsstatArgs> = {
  name: "FSSTAT",
  mutating: false,
  metadataChange: false,
  decode: (r) => ({ root: readFh(r) }),
  async run(req, args, w) {
    const attr = await req.volume.getattr(req.resolve(args.root));
    const s = await req.volume.fsstat();
    w.u32(NFS3_OK);
    writePostOpAttr(w, attr, req.fsid);
    w.u64(s.totalBytes).u64(s.freeBytes).u64(s.availBytes);
    w.u64(s.totalFiles).u64(s.freeFiles).u64(s.availFiles);
    // invarsec: the figures change at any time.
    w.u32(0);
    return undefined;
  },
  async failure(req, args, w) {
    writePostOpAttr(w, await req.attrsIfAny(args.root), req.fsid);
  },
};
