import { type Attr, FsError, isFsError } from "../../fs/index.ts";
import { FILE_HANDLE_BYTES } from "../file-handle.ts";
import { NFS3_COOKIEVERFSIZE, NFS3_OK } from "../nfs3.ts";
import type { NfsProcedure } from "../procedure.ts";
import { readFh, writePostOpAttr, writePostOpFh } from "../xdr3.ts";
import { listDirectory, nameBytes } from "./readdir-entries.ts";

interface ReaddirplusArgs {
  readonly dir: Uint8Array;
  readonly cookie: number;
  readonly verifier: bigint;
  readonly dircount: number;
  readonly maxcount: number;
}

const FIXED_BYTES = 4 + 4 + 84 + NFS3_COOKIEVERFSIZE + 4 + 4;
/** fileid and cookie: with the name, what `dircount` counts. */
const ENTRY_DIR_BYTES = 8 + 8;
/** value_follows, post_op_attr, post_op_fh3: what only `maxcount` counts. */
const ENTRY_EXTRA_BYTES = 4 + 4 + 84 + 4 + 4 + FILE_HANDLE_BYTES;

/**
 * READDIRPLUS (RFC 1813 3.3.17): entries with attributes and handles, honouring both `dircount`
 * (names, ids, cookies) and `maxcount` (the whole reply).
 */
export const readdirplus: NfsProcedure<ReaddirplusArgs> = {
  name: "READDIRPLUS",
  mutating: false,
  metadataChange: false,
  decode: (r) => ({
    dir: readFh(r),
    cookie: r.u64Number("cookie"),
    verifier: r.u64(),
    dircount: r.u32(),
    maxcount: r.u32(),
  }),
  async run(req, args, w) {
    let total = FIXED_BYTES;
    let dirBytes = 0;
    const listing = await listDirectory(req, req.resolve(args.dir), args.cookie, args.verifier, (entry) => {
      const dir = ENTRY_DIR_BYTES + nameBytes(entry.name);
      const all = dir + ENTRY_EXTRA_BYTES;
      if (total + all > args.maxcount || dirBytes + dir > args.dircount) return false;
      total += all;
      dirBytes += dir;
      return true;
    });
    if (listing.entries.length === 0 && !listing.eof) {
      throw new FsError("TOOSMALL", `dircount ${args.dircount} / maxcount ${args.maxcount} hold no entry`);
    }
    const attrs: Array<Attr | undefined> = [];
    for (const entry of listing.entries) {
      try {
        attrs.push(await req.volume.getattr(entry.ref));
      } catch (error) {
        // Removed since it was listed: the entry goes out without attributes or handle.
        if (!isFsError(error, "STALE")) throw error;
        attrs.push(undefined);
      }
    }
    w.u32(NFS3_OK);
    writePostOpAttr(w, listing.dirAttr, req.fsid);
    w.u64(listing.verifier);
    listing.entries.forEach((entry, i) => {
      const attr = attrs[i];
      w.bool(true).u64(entry.fileid).string(entry.name).u64(entry.cookie);
      writePostOpAttr(w, attr, req.fsid);
      writePostOpFh(w, attr === undefined ? undefined : req.handleOf(entry.ref));
    });
    w.bool(false).bool(listing.eof);
    return undefined;
  },
  async failure(req, args, w) {
    writePostOpAttr(w, await req.attrsIfAny(args.dir), req.fsid);
  },
};
