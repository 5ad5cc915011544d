import { NFS3_OK, TRANSFER_BYTES_MAX } from "../nfs3.ts";
import type { NfsProcedure } from "../procedure.ts";
import { readFh, writePostOpAttr } from "../xdr3.ts";

interface ReadArgs {
  readonly file: Uint8Array;
  readonly offset: number;
  readonly count: number;
}

const PADDING = new Uint8Array(3);

/** READ (RFC 1813 3.3.6): up to `count` bytes (clamped to rtmax); the data goes out without a copy,
 * from a buffer reused once the reply is sent. */
export const read: NfsProcedure<ReadArgs> = {
  name: "READ",
  mutating: false,
  metadataChange: false,
  decode: (r) => ({ file: readFh(r), offset: r.u64Number("offset"), count: r.u32() }),
  async run(req, args, w) {
    const count = Math.min(args.count, TRANSFER_BYTES_MAX);
    const result = await req.volume.read(req.cred, req.resolve(args.file), args.offset, count);
    if (result.release !== undefined) req.afterSent(result.release);
    w.u32(NFS3_OK);
    writePostOpAttr(w, result.attr, req.fsid);
    w.u32(result.data.length).bool(result.eof).u32(result.data.length);
    const pad = (4 - (result.data.length % 4)) % 4;
    return pad === 0 ? [result.data] : [result.data, PADDING.subarray(0, pad)];
  },
  async failure(req, args, w) {
    writePostOpAttr(w, await req.attrsIfAny(args.file), req.fsid);
  },
};
