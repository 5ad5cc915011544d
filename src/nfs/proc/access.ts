import { ACCESS } from "../../fs/index.ts";
import { NFS3_OK } from "../nfs3.ts";
import type { NfsProcedure } from "../procedure.ts";
import { readFh, writePostOpAttr } from "../xdr3.ts";

interface AccessArgs {
  readonly object: Uint8Array;
  readonly mask: number;
}

/** ACCESS (RFC 1813 3.3.4): which of the asked rights the caller holds. */
export const access: NfsProcedure<AccessArgs> = {
  name: "ACCESS",
  mutating: false,
  metadataChange: false,
  decode: (r) => ({ object: readFh(r), mask: r.u32() }),
  async run(req, args, w) {
    const { granted, attr } = await req.volume.access(req.cred, req.resolve(args.object), args.mask);
    // A read-only export grants no right to change anything.
    const allowed =
      req.rule.access === "ro" ? granted & ~(ACCESS.MODIFY | ACCESS.EXTEND | ACCESS.DELETE) : granted;
    w.u32(NFS3_OK);
    writePostOpAttr(w, attr, req.fsid);
    w.u32(allowed);
    return undefined;
  },
  async failure(req, args, w) {
    writePostOpAttr(w, await req.attrsIfAny(args.object), req.fsid);
  },
};
