import { NFS3_OK } from "../nfs3.ts";
import type { NfsProcedure } from "../procedure.ts";
import { type DirOpArgs, readDirOpArgs, writeWcc } from "../xdr3.ts";

/** REMOVE (RFC 1813 3.3.12): a non-directory entry. */
export const remove: NfsProcedure<DirOpArgs> = {
  name: "REMOVE",
  mutating: true,
  decode: readDirOpArgs,
  async run(req, args, w) {
    const wcc = await req.volume.remove(req.cred, req.resolve(args.dir), args.name);
    w.u32(NFS3_OK);
    writeWcc(w, wcc, req.fsid);
    return undefined;
  },
  async failure(req, args, w) {
    writeWcc(w, { after: await req.attrsIfAny(args.dir) }, req.fsid);
  },
};
