import { BLOCK_BYTES, BLOCK_RUN_COUNT_MAX } from "../block/index.ts";
import { checksum } from "./bytes.ts";
import { isFsError } from "./errors.ts";
import { decodeExtent, type Extent } from "./items.ts";
import { compareKeys, ItemType, type Key } from "./layout.ts";
import type { VolumeStore } from "./store.ts";
import type { ChildRef, InternalNode } from "./tree-node.ts";
import { isLeaf } from "./tree-node.ts";

export interface WalkVisitor {
  /** A tree node that loaded and verified, at `level`. */
  node(blockIndex: number, level: number): void;
  item(k: Key, value: Uint8Array): void;
  /** A data block of an extent; `crcOk` is false when its content fails the recorded checksum. */
  dataBlock(blockIndex: number, ino: number, fileBlock: number, crcOk: boolean): void;
  problem(kind: string, message: string, where: { blockIndex?: number; ino?: number }): void;
}

/**
 * Visits every tree node, item and data block of the committed tree in key order, verifying
 * checksums, node levels and key ranges. Damaged subtrees are reported and skipped.
 */
export async function walkVolume(store: VolumeStore, visitor: WalkVisitor, readData: boolean): Promise<void> {
  await walkRef(store, visitor, store.tree.root, null, null, null, readData);
}

async function walkRef(
  store: VolumeStore,
  visitor: WalkVisitor,
  ref: ChildRef,
  level: number | null,
  low: Key | null,
  high: Key | null,
  readData: boolean,
): Promise<void> {
  let node: Awaited<ReturnType<typeof store.tree.load>>;
  try {
    node = await store.tree.load(ref);
  } catch (error) {
    if (!isFsError(error, "IO")) throw error;
    visitor.problem("checksum", error.message, { blockIndex: ref.block });
    return;
  }
  if (level !== null && node.level !== level) {
    visitor.problem("tree", `node at block ${ref.block} has level ${node.level}, expected ${level}`, {
      blockIndex: ref.block,
    });
    return;
  }
  visitor.node(ref.block, node.level);
  const inRange = (k: Key): boolean =>
    (low === null || compareKeys(k, low) >= 0) && (high === null || compareKeys(k, high) < 0);
  if (isLeaf(node)) {
    for (let i = 0; i < node.keys.length; i++) {
      const k = node.keys[i]!;
      if (!inRange(k)) {
        visitor.problem("tree", `key out of its parent's range in block ${ref.block}`, {
          blockIndex: ref.block,
        });
        continue;
      }
      visitor.item(k, node.values[i]!);
      if (k.type === ItemType.EXTENT && readData) await walkExtentData(store, visitor, k, node.values[i]!);
    }
    return;
  }
  const internal = node as InternalNode;
  for (let i = 0; i < internal.children.length; i++) {
    const childLow = i === 0 ? low : internal.keys[i]!;
    const childHigh = i + 1 < internal.keys.length ? internal.keys[i + 1]! : high;
    await walkRef(store, visitor, internal.children[i]!, node.level - 1, childLow, childHigh, readData);
  }
}

async function walkExtentData(
  store: VolumeStore,
  visitor: WalkVisitor,
  k: Key,
  value: Uint8Array,
): Promise<void> {
  let extent: Extent;
  try {
    extent = decodeExtent(k.offset, value);
  } catch (error) {
    visitor.problem("extent", `inode ${k.oid}: ${String(error)}`, { ino: k.oid });
    return;
  }
  const count = extent.crcs.length;
  if (extent.deviceBlock + count > store.blockCount) {
    visitor.problem("extent", `inode ${k.oid} maps blocks past the device end`, { ino: k.oid });
    return;
  }
  let data: Uint8Array | null = null;
  try {
    data = await store.device.read(extent.deviceBlock, Math.min(count, BLOCK_RUN_COUNT_MAX));
  } catch (error) {
    visitor.problem("io", `cannot read data of inode ${k.oid}: ${String(error)}`, {
      ino: k.oid,
      blockIndex: extent.deviceBlock,
    });
  }
  for (let i = 0; i < count; i++) {
    const ok =
      data !== null && checksum(data.subarray(i * BLOCK_BYTES, (i + 1) * BLOCK_BYTES)) === extent.crcs[i];
    visitor.dataBlock(extent.deviceBlock + i, k.oid, extent.fileBlock + i, ok);
  }
}
