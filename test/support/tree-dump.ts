/**
 * A canonical, JSON-comparable picture of a whole volume: everything the contract makes observable
 * except timestamps and inode numbers. Works on any `Volume`, so the model and a real volume dump alike.
 */
import { createHash } from "node:crypto";
import type { NodeRef, Volume } from "../../src/fs/index.ts";
import { ROOT } from "./fs-ops.ts";

export interface DumpNode {
  readonly type: string;
  readonly mode: number;
  readonly nlink: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly usedBytes: number;
  readonly rdev?: string;
  readonly target?: string;
  /** sha256 of the file's bytes. */
  readonly digest?: string;
  /** Files with several links: the same label at every name of the same object, in walk order. */
  readonly link?: number;
  readonly entries?: ReadonlyArray<readonly [string, DumpNode]>;
}

export interface DumpOptions {
  /** Files larger than this are refused: dumps read whole files. */
  readonly fileBytesMax?: number;
  /** A key that changes whenever the object's bytes change; with `digestCache`, saves re-reading. */
  readonly contentKey?: (ref: NodeRef) => string;
  readonly digestCache?: Map<string, string>;
}

const READ_CHUNK_BYTES = 1024 * 1024;
const PAGE_ENTRIES = 64;

export async function dumpTree(volume: Volume, options: DumpOptions = {}): Promise<DumpNode> {
  const links = new Map<number, number>();
  return dumpObject(volume, volume.rootRef, options, links);
}

async function dumpObject(
  volume: Volume,
  ref: NodeRef,
  options: DumpOptions,
  links: Map<number, number>,
): Promise<DumpNode> {
  const attr = await volume.getattr(ref);
  const base = {
    type: attr.type,
    mode: attr.mode,
    nlink: attr.nlink,
    uid: attr.uid,
    gid: attr.gid,
    size: attr.size,
    usedBytes: attr.usedBytes,
  };
  switch (attr.type) {
    case "dir": {
      const entries: Array<readonly [string, DumpNode]> = [];
      for (const entry of await listDirectory(volume, ref)) {
        entries.push([entry.name, await dumpObject(volume, entry.ref, options, links)]);
      }
      return { ...base, entries };
    }
    case "lnk": {
      const { target } = await volume.readlink(ROOT, ref);
      return { ...base, target };
    }
    case "reg": {
      let link: number | undefined;
      if (attr.nlink > 1) {
        link = links.get(ref.ino) ?? links.size + 1;
        links.set(ref.ino, link);
      }
      const digest = await fileDigest(volume, ref, attr.size, options);
      return { ...base, digest, ...(link === undefined ? {} : { link }) };
    }
    case "chr":
    case "blk":
      return { ...base, rdev: `${attr.rdev.major}:${attr.rdev.minor}` };
    default:
      return base;
  }
}

export async function listDirectory(volume: Volume, dir: NodeRef) {
  const all = [];
  let cookie = 0;
  let verifier = 0n;
  for (;;) {
    const page = await volume.readdir(ROOT, dir, cookie, verifier, PAGE_ENTRIES);
    all.push(...page.entries);
    const last = page.entries.at(-1);
    if (page.eof || last === undefined) return all;
    cookie = last.cookie;
    verifier = page.verifier;
  }
}

async function fileDigest(volume: Volume, ref: NodeRef, size: number, options: DumpOptions): Promise<string> {
  const key = options.contentKey?.(ref);
  const cached = key === undefined ? undefined : options.digestCache?.get(key);
  if (cached !== undefined) return cached;
  const limit = options.fileBytesMax ?? 64 * 1024 * 1024;
  if (size > limit) throw new Error(`dumpTree: file ${ref.ino} of ${size} bytes is above ${limit}`);
  const hash = createHash("sha256");
  let offset = 0;
  for (;;) {
    const { data, eof } = await volume.read(ROOT, ref, offset, READ_CHUNK_BYTES);
    hash.update(data);
    offset += data.length;
    if (eof || data.length === 0) break;
  }
  if (offset !== size) throw new Error(`dumpTree: file ${ref.ino} read ${offset} bytes, size says ${size}`);
  const digest = hash.digest("hex");
  if (key !== undefined) options.digestCache?.set(key, digest);
  return digest;
}
