import type { SetAttrRequest, Timespec } from "../../fs/index.ts";
import { NFS3_OK } from "../nfs3.ts";
import type { NfsProcedure } from "../procedure.ts";
import { readFh, readSattr, readTime, writeWcc } from "../xdr3.ts";

interface SetattrArgs {
  readonly object: Uint8Array;
  readonly attrs: SetAttrRequest;
  readonly guardCtime: Timespec | undefined;
}

/** SETATTR (RFC 1813 3.3.2): changes attributes, guarded by the ctime the client last saw. */
export const setattr: NfsProcedure<SetattrArgs> = {
  name: "SETATTR",
  mutating: true,
  metadataChange: true,
  decode: (r) => ({ object: readFh(r), attrs: readSattr(r), guardCtime: r.optional(() => readTime(r)) }),
  async run(req, args, w) {
    const wcc = await req.volume.setattr(req.cred, req.resolve(args.object), args.attrs, args.guardCtime);
    w.u32(NFS3_OK);
    writeWcc(w, wcc, req.fsid);
    return undefined;
  },
  async failure(req, args, w) {
    writeWcc(w, { after: await req.attrsIfAny(args.object) }, req.fsid);
  },
};
