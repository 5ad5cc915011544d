import { BLOCK_BYTES } from "../block/index.ts";
import { checksum, readU64, viewOf, writeU64 } from "./bytes.ts";

const MAGIC = "FLOTILLA";
/** 2: an intent log after the superblocks, and its head in the superblock. */
export const FORMAT_VERSION = 2;

/** The root of everything: written last in a commit, to slot txg % 2, after the tree it names is durable. */
export interface Superblock {
  readonly txg: number;
  readonly blockCount: number;
  readonly rootBlock: number;
  readonly rootCrc: number;
  readonly usedBlocks: number;
  /** Next inode number to hand out: inode numbers are never reused. */
  readonly nextIno: number;
  readonly inodeCount: number;
  /** 16 random bytes fixed at mkfs: distinguishes this volume from any other. */
  readonly volumeId: Uint8Array;
  readonly createdSec: number;
  /** Absolute intent log position where the records following this group begin. */
  readonly logHead: number;
}

const CRC_OFFSET = BLOCK_BYTES - 4;

export function encodeSuperblock(sb: Superblock): Uint8Array {
  const bytes = new Uint8Array(BLOCK_BYTES);
  const view = viewOf(bytes);
  bytes.set(new TextEncoder().encode(MAGIC), 0);
  view.setUint32(8, FORMAT_VERSION, true);
  view.setUint32(12, BLOCK_BYTES, true);
  writeU64(view, 16, sb.txg);
  writeU64(view, 24, sb.blockCount);
  writeU64(view, 32, sb.rootBlock);
  view.setUint32(40, sb.rootCrc, true);
  writeU64(view, 48, sb.usedBlocks);
  writeU64(view, 56, sb.nextIno);
  writeU64(view, 64, sb.inodeCount);
  bytes.set(sb.volumeId.subarray(0, 16), 72);
  writeU64(view, 88, sb.createdSec);
  writeU64(view, 96, sb.logHead);
  view.setUint32(CRC_OFFSET, checksum(bytes.subarray(0, CRC_OFFSET)), true);
  return bytes;
}

/** Parses a superblock slot; returns a reason string when the slot holds no valid superblock. */
export function decodeSuperblock(bytes: Uint8Array): Superblock | string {
  const view = viewOf(bytes);
  if (new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC) return "no Flotilla signature";
  if (view.getUint32(CRC_OFFSET, true) !== checksum(bytes.subarray(0, CRC_OFFSET)))
    return "checksum mismatch";
  const version = view.getUint32(8, true);
  if (version !== FORMAT_VERSION)
    return `format version ${version} is not supported (this build reads ${FORMAT_VERSION})`;
  if (view.getUint32(12, true) !== BLOCK_BYTES)
    return `block size ${view.getUint32(12, true)} is not ${BLOCK_BYTES}`;
  return {
    txg: readU64(view, 16),
    blockCount: readU64(view, 24),
    rootBlock: readU64(view, 32),
    rootCrc: view.getUint32(40, true),
    usedBlocks: readU64(view, 48),
    nextIno: readU64(view, 56),
    inodeCount: readU64(view, 64),
    volumeId: bytes.slice(72, 88),
    createdSec: readU64(view, 88),
    logHead: readU64(view, 96),
  };
}
