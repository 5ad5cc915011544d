import { NFS3_OK } from "../nfs3.ts";
import type { NfsProcedure } from "../procedure.ts";
import { type DirOpArgs, readDirOpArgs, writePostOpAttr } from "../xdr3.ts";

/** LOOKUP (RFC 1813 3.3.3): a name in a directory, with both objects' attributes. */
export const lookup: NfsProcedure<DirOpArgs> = {
  name: "LOOKUP",
  mutating: false,
  metadataChange: false,
  decode: readDirOpArgs,
  async run(req, args, w) {
    const found = await req.volume.lookup(req.cred, req.resolve(args.dir), args.name);
    w.u32(NFS3_OK);
    w.opaque(req.handleOf(found.ref));
    writePostOpAttr(w, found.attr, req.fsid);
    writePostOpAttr(w, found.dirAttr, req.fsid);
    return undefined;
  },
  async failure(req, args, w) {
    writePostOpAttr(w, await req.attrsIfAny(args.dir), req.fsid);
  },
};
