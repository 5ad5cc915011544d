import { NFS3_OK } from "../nfs3.ts";
import type { NfsProcedure } from "../procedure.ts";
import { type DirOpArgs, readDirOpArgs, readFh, writePostOpAttr, writeWcc } from "../xdr3.ts";

interface LinkArgs {
  readonly file: Uint8Array;
  readonly link: DirOpArgs;
}

/** LINK (RFC 1813 3.3.15): a hard link. */
export const link: NfsProcedure<LinkArgs> = {
  name: "LINK",
  mutating: true,
  metadataChange: true,
  decode: (r) => ({ file: readFh(r), link: readDirOpArgs(r) }),
  async run(req, args, w) {
    const target = req.resolve(args.file);
    const result = await req.volume.link(req.cred, target, req.resolve(args.link.dir), args.link.name);
    w.u32(NFS3_OK);
    writePostOpAttr(w, result.attr, req.fsid);
    writeWcc(w, result.dir, req.fsid);
    return undefined;
  },
  async failure(req, args, w) {
    writePostOpAttr(w, await req.attrsIfAny(args.file), req.fsid);
    writeWcc(w, { after: await req.attrsIfAny(args.link.dir) }, req.fsid);
  },
};
