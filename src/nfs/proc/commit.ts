import { NFS3_OK } from "../nfs3.ts";
import type { NfsProcedure } from "../procedure.ts";
import { readFh, writeWcc } from "../xdr3.ts";

interface CommitArgs {
  readonly file: Uint8Array;
  readonly offset: number;
  readonly count: number;
}

/**
 * COMMIT (RFC 1813 3.3.21): everything written so far becomes durable (a transaction group commits,
 * whatever the range); the verifier tells the client whether its unstable writes survived.
 */
export const commit: NfsProcedure<CommitArgs> = {
  name: "COMMIT",
  mutating: false,
  metadataChange: false,
  decode: (r) => ({ file: readFh(r), offset: r.u64Number("offset"), count: r.u32() }),
  async run(req, args, w) {
    const ref = req.resolve(args.file);
    const before = await req.volume.getattr(ref);
    await req.volume.commit();
    const after = await req.volume.getattr(ref);
    w.u32(NFS3_OK);
    writeWcc(w, { before, after }, req.fsid);
    w.opaqueFixed(req.service.writeVerifier);
    return undefined;
  },
  async failure(req, args, w) {
    writeWcc(w, { after: await req.attrsIfAny(args.file) }, req.fsid);
  },
};
