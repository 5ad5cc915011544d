import { NFS3_OK } from "../nfs3.ts";
import type { NfsProcedure } from "../procedure.ts";
import { type DirOpArgs, readDirOpArgs, writeWcc } from "../xdr3.ts";

interface RenameArgs {
  readonly from: DirOpArgs;
  readonly to: DirOpArgs;
}

/** RENAME (RFC 1813 3.3.14): atomic, replacing a compatible target. */
export const rename: NfsProcedure<RenameArgs> = {
  name: "RENAME",
  mutating: true,
  metadataChange: true,
  decode: (r) => ({ from: readDirOpArgs(r), to: readDirOpArgs(r) }),
  async run(req, args, w) {
    const fromDir = req.resolve(args.from.dir);
    const toDir = req.resolve(args.to.dir);
    const result = await req.volume.rename(req.cred, fromDir, args.from.name, toDir, args.to.name);
    w.u32(NFS3_OK);
    writeWcc(w, result.from, req.fsid);
    writeWcc(w, result.to, req.fsid);
    return undefined;
  },
  async failure(req, args, w) {
    writeWcc(w, { after: await req.attrsIfAny(args.from.dir) }, req.fsid);
    writeWcc(w, { after: await req.attrsIfAny(args.to.dir) }, req.fsid);
  },
};
