import { type Attr, FsError, type NodeRef } from "../../fs/index.ts";
import type { NfsRequest } from "../procedure.ts";

/** One entry of a listing, "." and ".." included. */
export interface ListedEntry {
  readonly name: string;
  readonly fileid: number;
  readonly cookie: number;
  readonly ref: NodeRef;
}

/** Cookies 1 and 2 are "." and ".."; the file system's cookies start above them. */
const DOT_COOKIE = 1;
const DOTDOT_COOKIE = 2;
/** Entries fetched from the file system per round while filling a reply. */
const FETCH_ENTRIES = 512;

export interface Listing {
  readonly entries: ListedEntry[];
  readonly eof: boolean;
  readonly verifier: bigint;
  readonly dirAttr: Attr;
}

/**
 * Lists `dir` from `cookie` for as long as `fits` accepts entries (the caller keeps the byte budget).
 * BAD_COOKIE when a non-zero cookie comes with a verifier of the directory's earlier state.
 */
export async function listDirectory(
  req: NfsRequest,
  dir: NodeRef,
  cookie: number,
  verifier: bigint,
  fits: (entry: ListedEntry) => boolean,
): Promise<Listing> {
  const entries: ListedEntry[] = [];
  let page = await req.volume.readdir(req.cred, dir, cookie, cookie === 0 ? 0n : verifier, FETCH_ENTRIES);
  const take = (entry: ListedEntry): boolean => {
    if (!fits(entry)) return false;
    entries.push(entry);
    return true;
  };
  if (cookie < DOT_COOKIE && !take({ name: ".", fileid: dir.ino, cookie: DOT_COOKIE, ref: dir })) {
    return { entries, eof: false, verifier: page.verifier, dirAttr: page.dirAttr };
  }
  if (cookie < DOTDOT_COOKIE) {
    const parent = await req.volume.lookup(req.cred, dir, "..");
    if (!take({ name: "..", fileid: parent.ref.ino, cookie: DOTDOT_COOKIE, ref: parent.ref })) {
      return { entries, eof: false, verifier: page.verifier, dirAttr: page.dirAttr };
    }
  }
  for (;;) {
    for (const e of page.entries) {
      if (!take({ name: e.name, fileid: e.fileid, cookie: e.cookie, ref: e.ref })) {
        return { entries, eof: false, verifier: page.verifier, dirAttr: page.dirAttr };
      }
    }
    if (page.eof) return { entries, eof: true, verifier: page.verifier, dirAttr: page.dirAttr };
    const last = page.entries[page.entries.length - 1];
    if (last === undefined) throw new FsError("IO", "directory listing made no progress");
    page = await req.volume.readdir(req.cred, dir, last.cookie, page.verifier, FETCH_ENTRIES);
  }
}

/** Bytes of an XDR string of `name`. */
export function nameBytes(name: string): number {
  return 4 + ((Buffer.byteLength(name) + 3) & ~3);
}
