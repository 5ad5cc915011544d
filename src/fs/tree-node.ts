import { BLOCK_BYTES } from "../block/index.ts";
import { assert, assertionFailed } from "../util/assert.ts";
import { checksum, readU48, readU64, viewOf, writeU48, writeU64 } from "./bytes.ts";
import { FsError } from "./errors.ts";
import {
  compareKeys,
  INTERNAL_ENTRY_BYTES,
  INTERNAL_FANOUT_MAX,
  KEY_BYTES,
  type Key,
  LEAF_ITEM_OVERHEAD_BYTES,
  NODE_HEADER_BYTES,
  NODE_MAGIC,
  NODE_PAYLOAD_BYTES,
  TREE_HEIGHT_MAX,
} from "./layout.ts";

/**
 * A pointer to a tree node. A committed node is named by its block and checksum; a node changed in
 * the open transaction group is held in `dirty` until the commit writes it and fills in block and crc.
 */
export interface ChildRef {
  block: number;
  crc: number;
  dirty: TreeNode | null;
}

export interface LeafNode {
  readonly level: 0;
  keys: Key[];
  values: Uint8Array[];
  /** Bytes the items take in the node's payload. */
  payloadBytes: number;
  /** Block assigned during commit, -1 before. */
  addr: number;
}

export interface InternalNode {
  readonly level: number;
  keys: Key[];
  children: ChildRef[];
  addr: number;
}

export type TreeNode = LeafNode | InternalNode;

export function isLeaf(node: TreeNode): node is LeafNode {
  return node.level === 0;
}

export function leafItemBytes(value: Uint8Array): number {
  return LEAF_ITEM_OVERHEAD_BYTES + value.length;
}

export function newLeaf(): LeafNode {
  return { level: 0, keys: [], values: [], payloadBytes: 0, addr: -1 };
}

/** A private, mutable copy of a committed node (copy-on-write); values and keys are immutable and shared. */
export function cloneNode(node: TreeNode): TreeNode {
  if (isLeaf(node)) {
    return {
      level: 0,
      keys: node.keys.slice(),
      values: node.values.slice(),
      payloadBytes: node.payloadBytes,
      addr: -1,
    };
  }
  const internal = node as InternalNode;
  return {
    level: internal.level,
    keys: internal.keys.slice(),
    children: internal.children.map((c) => ({ block: c.block, crc: c.crc, dirty: c.dirty })),
    addr: -1,
  };
}

function writeKey(view: DataView, offset: number, k: Key): void {
  writeU64(view, offset, k.oid);
  view.setUint8(offset + 8, k.type);
  writeU64(view, offset + 9, k.offset);
}

function readKey(view: DataView, offset: number): Key {
  return { oid: readU64(view, offset), type: view.getUint8(offset + 8), offset: readU64(view, offset + 9) };
}

/** Serializes a node for block `blockIndex` of transaction group `txg`; returns the block and its checksum. */
export function encodeNode(
  node: TreeNode,
  blockIndex: number,
  txg: number,
): { bytes: Uint8Array; crc: number } {
  const bytes = new Uint8Array(BLOCK_BYTES);
  const view = viewOf(bytes);
  view.setUint32(0, NODE_MAGIC, true);
  view.setUint8(4, node.level);
  view.setUint16(6, node.keys.length, true);
  writeU64(view, 8, blockIndex);
  writeU64(view, 16, txg);
  for (let i = 1; i < node.keys.length; i++) {
    assert(
      compareKeys(node.keys[i - 1]!, node.keys[i]!) < 0,
      `node for block ${blockIndex} has keys out of order at ${i}`,
    );
  }
  let at = NODE_HEADER_BYTES;
  if (isLeaf(node)) {
    if (!(node.payloadBytes <= NODE_PAYLOAD_BYTES))
      assertionFailed(`leaf overflows: ${node.payloadBytes} bytes`);
    for (let i = 0; i < node.keys.length; i++) {
      const value = node.values[i]!;
      writeKey(view, at, node.keys[i]!);
      view.setUint16(at + KEY_BYTES, value.length, true);
      bytes.set(value, at + LEAF_ITEM_OVERHEAD_BYTES);
      at += LEAF_ITEM_OVERHEAD_BYTES + value.length;
    }
  } else {
    const internal = node as InternalNode;
    assert(
      internal.children.length <= INTERNAL_FANOUT_MAX,
      `internal node overflows: ${internal.children.length}`,
    );
    for (let i = 0; i < internal.keys.length; i++) {
      const child = internal.children[i]!;
      assert(child.dirty === null, "encoding a node whose child is not yet written");
      assert(child.block >= 0, "encoding a node whose child has no block");
      writeKey(view, at, internal.keys[i]!);
      writeU48(view, at + KEY_BYTES, child.block);
      view.setUint32(at + KEY_BYTES + 6, child.crc, true);
      at += INTERNAL_ENTRY_BYTES;
    }
  }
  return { bytes, crc: checksum(bytes) };
}

function corrupt(blockIndex: number, what: string): FsError {
  return new FsError("IO", `metadata block ${blockIndex} is corrupt: ${what}`, { blockIndex });
}

/**
 * Parses and verifies a node read from `blockIndex`: its checksum must equal the one its parent
 * recorded, and its header must name this block. A mismatch is an IO error naming the block.
 */
export function decodeNode(bytes: Uint8Array, blockIndex: number, expectedCrc: number): TreeNode {
  const actualCrc = checksum(bytes);
  if (actualCrc !== expectedCrc) {
    throw corrupt(blockIndex, `checksum ${hex(actualCrc)} does not match the recorded ${hex(expectedCrc)}`);
  }
  const view = viewOf(bytes);
  if (view.getUint32(0, true) !== NODE_MAGIC) throw corrupt(blockIndex, "not a tree node");
  if (readU64(view, 8) !== blockIndex) throw corrupt(blockIndex, `header names block ${readU64(view, 8)}`);
  const level = view.getUint8(4);
  const count = view.getUint16(6, true);
  if (level > TREE_HEIGHT_MAX) throw corrupt(blockIndex, `level ${level}`);
  const keys: Key[] = [];
  let at = NODE_HEADER_BYTES;
  if (level === 0) {
    const values: Uint8Array[] = [];
    for (let i = 0; i < count; i++) {
      if (at + LEAF_ITEM_OVERHEAD_BYTES > BLOCK_BYTES) throw corrupt(blockIndex, "item runs past the block");
      keys.push(readKey(view, at));
      const length = view.getUint16(at + KEY_BYTES, true);
      const start = at + LEAF_ITEM_OVERHEAD_BYTES;
      if (start + length > BLOCK_BYTES) throw corrupt(blockIndex, "value runs past the block");
      values.push(bytes.slice(start, start + length));
      at = start + length;
    }
    checkOrder(keys, blockIndex);
    return { level: 0, keys, values, payloadBytes: at - NODE_HEADER_BYTES, addr: -1 };
  }
  if (count === 0 || count > INTERNAL_FANOUT_MAX)
    throw corrupt(blockIndex, `internal node with ${count} entries`);
  const children: ChildRef[] = [];
  for (let i = 0; i < count; i++) {
    keys.push(readKey(view, at));
    children.push({
      block: readU48(view, at + KEY_BYTES),
      crc: view.getUint32(at + KEY_BYTES + 6, true),
      dirty: null,
    });
    at += INTERNAL_ENTRY_BYTES;
  }
  checkOrder(keys, blockIndex);
  return { level, keys, children, addr: -1 };
}

function checkOrder(keys: readonly Key[], blockIndex: number): void {
  for (let i = 1; i < keys.length; i++) {
    if (compareKeys(keys[i - 1]!, keys[i]!) >= 0) throw corrupt(blockIndex, `keys out of order at ${i}`);
  }
}

export function hex(value: number): string {
  return `0x${value.toString(16).padStart(8, "0")}`;
}
