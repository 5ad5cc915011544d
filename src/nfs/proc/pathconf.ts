import { NAME_BYTES_MAX, NLINK_MAX } from "../../fs/index.ts";
import { NFS3_OK } from "../nfs3.ts";
import type { NfsProcedure } from "../procedure.ts";
import { readFh, writePostOpAttr } from "../xdr3.ts";

interface PathconfArgs {
  readonly object: Uint8Array;
}

/** PATHCONF (RFC 1813 3.3.20): link and name limits; names are case-sensitive and never truncated. */
export const pathconf: NfsProcedure<PathconfArgs> = {
  name: "PATHCONF",
  mutating: false,
  metadataChange: false,
  decode: (r) => ({ object: readFh(r) }),
  async run(req, args, w) {
    const attr = await req.volume.getattr(req.resolve(args.object));
    w.u32(NFS3_OK);
    writePostOpAttr(w, attr, req.fsid);
    w.u32(NLINK_MAX).u32(NAME_BYTES_MAX).bool(true).bool(true).bool(false).bool(true);
    return undefined;
  },
  async failure(req, args, w) {
    writePostOpAttr(w, await req.attrsIfAny(args.object), req.fsid);
  },
};
