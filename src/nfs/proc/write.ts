import { FsError, type Stability } from "../../fs/index.ts";
import { NFS3_OK, StableHow, TRANSFER_BYTES_MAX } from "../nfs3.ts";
import type { NfsProcedure } from "../procedure.ts";
import { readFh, writeWcc } from "../xdr3.ts";

interface WriteArgs {
  readonly file: Uint8Array;
  readonly offset: number;
  readonly count: number;
  readonly stable: number;
  readonly data: Uint8Array;
}

const STABILITY: Record<number, Stability> = {
  [StableHow.UNSTABLE]: "unstable",
  [StableHow.DATA_SYNC]: "data-sync",
  [StableHow.FILE_SYNC]: "file-sync",
};

const STABLE_HOW: Record<Stability, number> = {
  unstable: StableHow.UNSTABLE,
  "data-sync": StableHow.DATA_SYNC,
  "file-sync": StableHow.FILE_SYNC,
};

/**
 * WRITE (RFC 1813 3.3.7): writes at the asked stability and answers with the write verifier. Once
 * the volume no longer needs the data, the call's record goes back to the RPC layer for reuse.
 */
export const write: NfsProcedure<WriteArgs> = {
  name: "WRITE",
  mutating: true,
  metadataChange: false,
  decode: (r) => ({
    file: readFh(r),
    offset: r.u64Number("offset"),
    count: r.u32(),
    stable: r.enumOf([StableHow.UNSTABLE, StableHow.DATA_SYNC, StableHow.FILE_SYNC], "stable_how"),
    data: r.opaque(TRANSFER_BYTES_MAX, "write data"),
  }),
  async run(req, args, w) {
    if (args.count > args.data.length) {
      throw new FsError("INVAL", `WRITE count ${args.count} exceeds the ${args.data.length} bytes sent`);
    }
    const data = args.data.subarray(0, args.count);
    const stability = STABILITY[args.stable] ?? "file-sync";
    const result = await req.volume.write(req.cred, req.resolve(args.file), args.offset, data, stability);
    // The handle and data are views of the call's record; neither is used past this point.
    if (result.dataReleased === true) req.releaseArgs();
    w.u32(NFS3_OK);
    writeWcc(w, result.wcc, req.fsid);
    w.u32(result.count).u32(STABLE_HOW[result.committed]).opaqueFixed(req.service.writeVerifier);
    return undefined;
  },
  async failure(req, args, w) {
    writeWcc(w, { after: await req.attrsIfAny(args.file) }, req.fsid);
  },
};
