import { NFS3_OK } from "../nfs3.ts";
import type { NfsProcedure } from "../procedure.ts";
import { readFh, writePostOpAttr } from "../xdr3.ts";

interface ReadlinkArgs {
  readonly symlink: Uint8Array;
}

/** READLINK (RFC 1813 3.3.5): a symbolic link's target. */
export const readlink: NfsProcedure<ReadlinkArgs> = {
  name: "READLINK",
  mutating: false,
  metadataChange: false,
  decode: (r) => ({ symlink: readFh(r) }),
  async run(req, args, w) {
    const { target, attr } = await req.volume.readlink(req.cred, req.resolve(args.symlink));
    w.u32(NFS3_OK);
    writePostOpAttr(w, attr, req.fsid);
    w.string(target);
    return undefined;
  },
  async failure(req, args, w) {
    writePostOpAttr(w, await req.attrsIfAny(args.symlink), req.fsid);
  },
};
