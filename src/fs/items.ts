import { assert, assertionFailed } from "../util/assert.ts";
import { crc32 } from "../util/crc32.ts";
import { fromUtf8, readU48, readU64, utf8, viewOf, writeU48, writeU64 } from "./bytes.ts";
import { FsError } from "./errors.ts";
import { DIR_FIRST_SEQ, EXTENT_BLOCKS_MAX, ItemType, type Key, key } from "./layout.ts";
import type { FileType, Timespec } from "./types.ts";

/** An inode as it lives in memory while an operation works on it. */
export interface Inode {
  readonly ino: number;
  readonly gen: number;
  readonly type: FileType;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  size: number;
  /** Data blocks the file references. */
  dataBlocks: number;
  rdevMajor: number;
  rdevMinor: number;
  atime: Timespec;
  mtime: Timespec;
  ctime: Timespec;
  change: number;
  /** Directories: the parent directory (the root is its own parent). */
  parent: number;
  /** Directories: the next READDIR sequence number. */
  nextSeq: number;
  /** Directories: how many entries they hold. */
  entryCount: number;
  /** Regular files made by an exclusive create: the client's verifier, kept so a retry succeeds. */
  verifier: Uint8Array | null;
}

const TYPE_CODES: Record<FileType, number> = { reg: 1, dir: 2, lnk: 3, chr: 4, blk: 5, sock: 6, fifo: 7 };
const TYPES_BY_CODE: readonly (FileType | undefined)[] = [
  undefined,
  "reg",
  "dir",
  "lnk",
  "chr",
  "blk",
  "sock",
  "fifo",
];

function typeOf(code: number): FileType {
  const type = TYPES_BY_CODE[code];
  if (type === undefined) throw new FsError("IO", `unknown object type code ${code}`);
  return type;
}

export const inodeKey = (ino: number): Key => key(ino, ItemType.INODE, 0);
export const symlinkKey = (ino: number): Key => key(ino, ItemType.SYMLINK, 0);
export const dirIndexKey = (dir: number, seq: number): Key => key(dir, ItemType.DIR_INDEX, seq);
export const dirEntryKey = (dir: number, hash: number): Key => key(dir, ItemType.DIR_ENTRY, hash);
export const extentKey = (ino: number, fileBlock: number): Key => key(ino, ItemType.EXTENT, fileBlock);

const INODE_BYTES = 152;

export function encodeInode(inode: Inode): Uint8Array {
  const bytes = new Uint8Array(INODE_BYTES);
  const view = viewOf(bytes);
  view.setUint8(0, TYPE_CODES[inode.type]);
  view.setUint8(1, inode.verifier === null ? 0 : 1);
  view.setUint16(2, inode.mode, true);
  view.setUint32(4, inode.nlink, true);
  view.setUint32(8, inode.uid, true);
  view.setUint32(12, inode.gid, true);
  writeU64(view, 16, inode.size);
  writeU64(view, 24, inode.dataBlocks);
  view.setUint32(32, inode.rdevMajor, true);
  view.setUint32(36, inode.rdevMinor, true);
  writeU64(view, 40, inode.gen);
  writeU64(view, 48, inode.atime.sec);
  view.setUint32(56, inode.atime.nsec, true);
  writeU64(view, 60, inode.mtime.sec);
  view.setUint32(68, inode.mtime.nsec, true);
  writeU64(view, 72, inode.ctime.sec);
  view.setUint32(80, inode.ctime.nsec, true);
  writeU64(view, 84, inode.change);
  writeU64(view, 92, inode.parent);
  writeU64(view, 100, inode.nextSeq);
  writeU64(view, 108, inode.entryCount);
  writeU64(view, 116, inode.ino);
  if (inode.verifier !== null) bytes.set(inode.verifier.subarray(0, 8), 124);
  return bytes;
}

export function decodeInode(bytes: Uint8Array): Inode {
  if (bytes.length !== INODE_BYTES) throw new FsError("IO", `inode item of ${bytes.length} bytes`);
  const view = viewOf(bytes);
  return {
    type: typeOf(view.getUint8(0)),
    verifier: view.getUint8(1) === 1 ? bytes.slice(124, 132) : null,
    mode: view.getUint16(2, true),
    nlink: view.getUint32(4, true),
    uid: view.getUint32(8, true),
    gid: view.getUint32(12, true),
    size: readU64(view, 16),
    dataBlocks: readU64(view, 24),
    rdevMajor: view.getUint32(32, true),
    rdevMinor: view.getUint32(36, true),
    gen: readU64(view, 40),
    atime: { sec: readU64(view, 48), nsec: view.getUint32(56, true) },
    mtime: { sec: readU64(view, 60), nsec: view.getUint32(68, true) },
    ctime: { sec: readU64(view, 72), nsec: view.getUint32(80, true) },
    change: readU64(view, 84),
    parent: readU64(view, 92),
    nextSeq: readU64(view, 100),
    entryCount: readU64(view, 108),
    ino: readU64(view, 116),
  };
}

/** A name in a directory, as both the by-name and the by-sequence items record it. */
export interface DirEntryRecord {
  readonly name: string;
  readonly ino: number;
  readonly gen: number;
  readonly type: FileType;
  readonly seq: number;
}

/** 52-bit hash of a name (two CRCs with different seeds): collisions are kept in one item. */
export function nameHash(nameBytes: Uint8Array): number {
  const high = crc32(nameBytes) >>> 0;
  const low = (crc32(nameBytes, 0x5bd1e995) >>> 0) & 0xfffff;
  return high * 0x100000 + low;
}

export function encodeDirEntries(entries: readonly DirEntryRecord[]): Uint8Array {
  const names = entries.map((e) => utf8(e.name));
  const total = 1 + names.reduce((sum, n) => sum + 1 + n.length + 25, 0);
  const bytes = new Uint8Array(total);
  const view = viewOf(bytes);
  assert(entries.length < 256, "too many entries in one hash bucket");
  view.setUint8(0, entries.length);
  let at = 1;
  entries.forEach((entry, i) => {
    const name = names[i]!;
    view.setUint8(at, name.length);
    bytes.set(name, at + 1);
    at += 1 + name.length;
    writeU64(view, at, entry.ino);
    writeU64(view, at + 8, entry.gen);
    view.setUint8(at + 16, TYPE_CODES[entry.type]);
    writeU64(view, at + 17, entry.seq);
    at += 25;
  });
  return bytes;
}

export function decodeDirEntries(bytes: Uint8Array): DirEntryRecord[] {
  const view = viewOf(bytes);
  const count = view.getUint8(0);
  const out: DirEntryRecord[] = [];
  let at = 1;
  for (let i = 0; i < count; i++) {
    const length = view.getUint8(at);
    if (at + 1 + length + 25 > bytes.length) throw new FsError("IO", "directory entry item is truncated");
    const name = fromUtf8(bytes.subarray(at + 1, at + 1 + length));
    at += 1 + length;
    out.push({
      name,
      ino: readU64(view, at),
      gen: readU64(view, at + 8),
      type: typeOf(view.getUint8(at + 16)),
      seq: readU64(view, at + 17),
    });
    at += 25;
  }
  return out;
}

export function encodeDirIndex(entry: DirEntryRecord): Uint8Array {
  const name = utf8(entry.name);
  const bytes = new Uint8Array(18 + name.length);
  const view = viewOf(bytes);
  writeU64(view, 0, entry.ino);
  writeU64(view, 8, entry.gen);
  view.setUint8(16, TYPE_CODES[entry.type]);
  view.setUint8(17, name.length);
  bytes.set(name, 18);
  return bytes;
}

export function decodeDirIndex(bytes: Uint8Array, seq: number): DirEntryRecord {
  const view = viewOf(bytes);
  const length = view.getUint8(17);
  if (18 + length !== bytes.length) throw new FsError("IO", "directory index item is malformed");
  return {
    ino: readU64(view, 0),
    gen: readU64(view, 8),
    type: typeOf(view.getUint8(16)),
    name: fromUtf8(bytes.subarray(18)),
    seq,
  };
}

/** A run of device blocks backing consecutive file blocks, one checksum per block. */
export interface Extent {
  readonly fileBlock: number;
  readonly deviceBlock: number;
  readonly crcs: readonly number[];
}

export function encodeExtent(extent: Extent): Uint8Array {
  const count = extent.crcs.length;
  if (!(count >= 1 && count <= EXTENT_BLOCKS_MAX)) assertionFailed(`extent of ${count} blocks`);
  const bytes = new Uint8Array(8 + 4 * count);
  const view = viewOf(bytes);
  writeU48(view, 0, extent.deviceBlock);
  view.setUint16(6, count, true);
  extent.crcs.forEach((crc, i) => {
    view.setUint32(8 + 4 * i, crc, true);
  });
  return bytes;
}

export function decodeExtent(fileBlock: number, bytes: Uint8Array): Extent {
  const view = viewOf(bytes);
  const count = view.getUint16(6, true);
  if (count < 1 || count > EXTENT_BLOCKS_MAX || bytes.length !== 8 + 4 * count) {
    throw new FsError("IO", `extent item at file block ${fileBlock} is malformed`);
  }
  const crcs: number[] = [];
  for (let i = 0; i < count; i++) crcs.push(view.getUint32(8 + 4 * i, true));
  return { fileBlock, deviceBlock: readU48(view, 0), crcs };
}

/** A new, empty directory: two links (its entry and its own "."), no entries yet. */
export function emptyDirectory(
  ino: number,
  gen: number,
  parent: number,
  owner: { mode: number; uid: number; gid: number },
  now: Timespec,
): Inode {
  return {
    ino,
    gen,
    type: "dir",
    mode: owner.mode,
    nlink: 2,
    uid: owner.uid,
    gid: owner.gid,
    size: 0,
    dataBlocks: 0,
    rdevMajor: 0,
    rdevMinor: 0,
    atime: now,
    mtime: now,
    ctime: now,
    change: 1,
    parent,
    nextSeq: DIR_FIRST_SEQ,
    entryCount: 0,
    verifier: null,
  };
}
