import { NFS3_OK } from "../nfs3.ts";
import type { NfsProcedure } from "../procedure.ts";
import { readFh, writeFattr } from "../xdr3.ts";

interface GetattrArgs {
  readonly object: Uint8Array;
}

/** GETATTR (RFC 1813 3.3.1): the object's attributes. */
export const getattr: NfsProcedure<GetattrArgs> = {
  name: "GETATTR",
  mutating: false,
  metadataChange: false,
  decode: (r) => ({ object: readFh(r) }),
  async run(req, args, w) {
    const attr = await req.volume.getattr(req.resolve(args.object));
    w.u32(NFS3_OK);
    writeFattr(w, attr, req.fsid);
    return undefined;
  },
  failure: async () => undefined,
};
