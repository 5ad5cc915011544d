import { FsError } from "../../fs/index.ts";
import { NFS3_COOKIEVERFSIZE, NFS3_OK } from "../nfs3.ts";
import type { NfsProcedure } from "../procedure.ts";
import { readFh, writePostOpAttr } from "../xdr3.ts";
import { listDirectory, nameBytes } from "./readdir-entries.ts";

interface ReaddirArgs {
  readonly dir: Uint8Array;
  readonly cookie: number;
  readonly verifier: bigint;
  readonly count: number;
}

/** status, post_op_attr, cookie verifier, end of list, eof. */
const FIXED_BYTES = 4 + 4 + 84 + NFS3_COOKIEVERFSIZE + 4 + 4;
/** value_follows, fileid, cookie: the entry's bytes besides its name. */
const ENTRY_FIXED_BYTES = 4 + 8 + 8;

/** READDIR (RFC 1813 3.3.16): names and cookies, never more than `count` bytes of reply. */
export const readdir: NfsProcedure<ReaddirArgs> = {
  name: "READDIR",
  mutating: false,
  metadataChange: false,
  decode: (r) => ({ dir: readFh(r), cookie: r.u64Number("cookie"), verifier: r.u64(), count: r.u32() }),
  async run(req, args, w) {
    let used = FIXED_BYTES;
    const listing = await listDirectory(req, req.resolve(args.dir), args.cookie, args.verifier, (entry) => {
      const bytes = ENTRY_FIXED_BYTES + nameBytes(entry.name);
      if (used + bytes > args.count) return false;
      used += bytes;
      return true;
    });
    if (listing.entries.length === 0 && !listing.eof)
      throw new FsError("TOOSMALL", `count ${args.count} holds no entry`);
    w.u32(NFS3_OK);
    writePostOpAttr(w, listing.dirAttr, req.fsid);
    w.u64(listing.verifier);
    for (const entry of listing.entries) w.bool(true).u64(entry.fileid).string(entry.name).u64(entry.cookie);
    w.bool(false).bool(listing.eof);
    return undefined;
  },
  async failure(req, args, w) {
    writePostOpAttr(w, await req.attrsIfAny(args.dir), req.fsid);
  },
};
