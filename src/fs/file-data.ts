import { BLOCK_BYTES, BLOCK_RUN_COUNT_MAX } from "../block/index.ts";
import { checksum } from "./bytes.ts";
import { FsError } from "./errors.ts";
import { decodeExtent, type Extent, encodeExtent, extentKey, type Inode } from "./items.ts";
import { EXTENT_BLOCKS_MAX, KEY_OFFSET_MAX } from "./layout.ts";
import { POOLED_READ_BYTES, POOLED_READ_BYTES_MIN, readBuffers } from "./read-buffers.ts";
import { deviceError, type VolumeStore } from "./store.ts";
import { hex } from "./tree-node.ts";

/** Writes up to this size are held back and sent to the device together with others. */
const DEFERRED_WRITE_BYTES_MAX = 64 * 1024;

/**
 * A data write mapped in the tree; `landed` resolves once its blocks are on the device, or is null
 * for a write held back until the next commit (which waits for it).
 */
export interface Landing {
  readonly landed: Promise<void> | null;
  /** True when the caller's bytes themselves (not a copy) go to the device: they must not change until landed. */
  readonly usesCallerBytes: boolean;
}

const extentEnd = (e: Extent): number => e.fileBlock + e.crcs.length;

/** The extents of `ino` that overlap file blocks [first, last], in order. */
export async function extentsOverlapping(
  store: VolumeStore,
  ino: number,
  first: number,
  last: number,
): Promise<Extent[]> {
  const out: Extent[] = [];
  const from = extentKey(ino, Math.max(0, first - EXTENT_BLOCKS_MAX + 1));
  await store.tree.scan(from, extentKey(ino, last), (k, value) => {
    const extent = decodeExtent(k.offset, value);
    if (extentEnd(extent) > first) out.push(extent);
    return true;
  });
  return out;
}

/** Bytes read from a file; `release` hands a pooled buffer back once nothing uses `bytes` any more. */
export interface FileBytes {
  readonly bytes: Uint8Array;
  /** Called at most once; until then `bytes` stays as read. Not calling it only costs an allocation. */
  readonly release: (() => void) | null;
}

/**
 * Reads file blocks [first, first + count) into one buffer (pooled when large), each device run
 * straight into its place; holes read as zeros. Verifies every block.
 */
async function readBlocks(store: VolumeStore, ino: number, first: number, count: number): Promise<FileBytes> {
  const extents = await extentsOverlapping(store, ino, first, first + count - 1);
  // Neighbouring extents that are also neighbours on the device are read with one call.
  const runs: Array<{ fileBlock: number; deviceBlock: number; crcs: number[] }> = [];
  for (const e of extents) {
    const lo = Math.max(e.fileBlock, first);
    const hi = Math.min(extentEnd(e), first + count);
    const deviceBlock = e.deviceBlock + (lo - e.fileBlock);
    const crcs = e.crcs.slice(lo - e.fileBlock, hi - e.fileBlock);
    const last = runs[runs.length - 1];
    if (
      last !== undefined &&
      last.fileBlock + last.crcs.length === lo &&
      last.deviceBlock + last.crcs.length === deviceBlock &&
      last.crcs.length + crcs.length <= BLOCK_RUN_COUNT_MAX
    ) {
      last.crcs.push(...crcs);
    } else {
      runs.push({ fileBlock: lo, deviceBlock, crcs });
    }
  }
  const bytes = count * BLOCK_BYTES;
  const pooled = bytes >= POOLED_READ_BYTES_MIN && bytes <= POOLED_READ_BYTES ? readBuffers.take() : null;
  const out = pooled === null ? new Uint8Array(bytes) : pooled.subarray(0, bytes);
  const covered = runs.reduce((n, run) => n + run.crcs.length, 0);
  // A reused buffer holds an earlier read's bytes: the holes must be cleared.
  if (pooled !== null && covered < count) out.fill(0);
  // On a failure other runs may still be reading into the buffer: it is left to the collector then.
  await Promise.all(
    runs.map(async (run) => {
      const at = (run.fileBlock - first) * BLOCK_BYTES;
      const data = out.subarray(at, at + run.crcs.length * BLOCK_BYTES);
      try {
        if (store.device.readInto !== undefined) await store.device.readInto(run.deviceBlock, data);
        else data.set(await store.device.read(run.deviceBlock, run.crcs.length));
      } catch (error) {
        throw deviceError(error, `cannot read data of inode ${ino}`);
      }
      store.landing.overlay(run.deviceBlock, run.crcs.length, data);
      for (let i = 0; i < run.crcs.length; i++) {
        const block = data.subarray(i * BLOCK_BYTES, (i + 1) * BLOCK_BYTES);
        const actual = checksum(block);
        if (actual !== run.crcs[i]) {
          const deviceBlock = run.deviceBlock + i;
          throw new FsError(
            "IO",
            `data block ${deviceBlock} (inode ${ino}, file block ${run.fileBlock + i}) is corrupt: checksum ${hex(actual)} does not match the recorded ${hex(run.crcs[i]!)}`,
            { blockIndex: deviceBlock },
          );
        }
      }
    }),
  );
  // The pool itself refuses a buffer given back twice.
  return { bytes: out, release: pooled === null ? null : () => readBuffers.give(pooled) };
}

/** Bytes [offset, offset + count) of the file, cut at its size. */
export async function readData(
  store: VolumeStore,
  inode: Inode,
  offset: number,
  count: number,
): Promise<FileBytes> {
  const end = Math.min(offset + count, inode.size);
  if (offset >= end) return { bytes: new Uint8Array(0), release: null };
  const first = Math.floor(offset / BLOCK_BYTES);
  const blockCount = Math.ceil(end / BLOCK_BYTES) - first;
  const blocks = await readBlocks(store, inode.ino, first, blockCount);
  return {
    bytes: blocks.bytes.subarray(offset - first * BLOCK_BYTES, end - first * BLOCK_BYTES),
    release: blocks.release,
  };
}

/**
 * Replaces the mapping of file blocks [first, first + count) with `fresh` (which may be empty, to
 * punch a hole): trims the extents that overlap the range and frees the blocks they no longer map.
 */
async function remap(
  store: VolumeStore,
  inode: Inode,
  first: number,
  count: number,
  fresh: Extent[],
): Promise<void> {
  const end = first + count;
  const old = await extentsOverlapping(store, inode.ino, first, end - 1);
  for (const e of old) {
    const keepHead = e.fileBlock < first;
    if (keepHead) {
      await store.tree.put(
        extentKey(inode.ino, e.fileBlock),
        encodeExtent({ ...e, crcs: e.crcs.slice(0, first - e.fileBlock) }),
      );
    } else {
      await store.tree.delete(extentKey(inode.ino, e.fileBlock));
    }
    if (extentEnd(e) > end) {
      const skip = end - e.fileBlock;
      await store.tree.put(
        extentKey(inode.ino, end),
        encodeExtent({ fileBlock: end, deviceBlock: e.deviceBlock + skip, crcs: e.crcs.slice(skip) }),
      );
    }
    const lo = Math.max(e.fileBlock, first);
    const hi = Math.min(extentEnd(e), end);
    for (let fb = lo; fb < hi; fb++) store.allocator.release(e.deviceBlock + (fb - e.fileBlock));
    inode.dataBlocks -= hi - lo;
  }
  for (const e of fresh) {
    await store.tree.put(extentKey(inode.ino, e.fileBlock), encodeExtent(e));
    inode.dataBlocks += e.crcs.length;
  }
}

/**
 * Writes whole blocks to new device blocks (copy-on-write) and maps them at file block `first`.
 * The mapping is done when this returns. A small write is held back to go to the device with
 * others (its `landed` is null: nobody needs to wait for it before a commit); a large one is sent
 * at once and `landed` resolves when it is on the device (until then `data` must not change).
 */
async function writeBlocks(
  store: VolumeStore,
  inode: Inode,
  first: number,
  given: Uint8Array,
  owned: boolean,
): Promise<Landing> {
  const deferred = store.device.holdsWritesBack && given.length <= DEFERRED_WRITE_BYTES_MAX;
  // A held-back write outlives the call, so it keeps its own copy of the caller's bytes.
  let data = given;
  if (deferred && !owned) {
    data = store.slab.take(given.length / BLOCK_BYTES);
    data.set(given);
  }
  const count = data.length / BLOCK_BYTES;
  const runs = await store.allocateData(count);
  const fresh: Extent[] = [];
  const landings: Array<Promise<void>> = [];
  let at = 0;
  for (const run of runs) {
    for (let k = 0; k < run.count; k += BLOCK_RUN_COUNT_MAX) {
      const n = Math.min(BLOCK_RUN_COUNT_MAX, run.count - k);
      const piece = data.subarray((at + k) * BLOCK_BYTES, (at + k + n) * BLOCK_BYTES);
      landings.push(
        deferred ? store.landing.defer(run.start + k, piece) : store.landing.begin(run.start + k, piece),
      );
    }
    for (let k = 0; k < run.count; k += EXTENT_BLOCKS_MAX) {
      const n = Math.min(EXTENT_BLOCKS_MAX, run.count - k);
      const crcs: number[] = [];
      for (let b = at + k; b < at + k + n; b++)
        crcs.push(checksum(data.subarray(b * BLOCK_BYTES, (b + 1) * BLOCK_BYTES)));
      fresh.push({ fileBlock: first + at + k, deviceBlock: run.start + k, crcs });
    }
    at += run.count;
  }
  const landed = Promise.all(landings).then(
    () => undefined,
    (error: unknown) => {
      throw deviceError(error, `cannot write data of inode ${inode.ino}`);
    },
  );
  // The caller awaits it; until then a failure must not surface as an unhandled rejection.
  landed.catch(() => undefined);
  await remap(store, inode, first, count, fresh);
  return { landed: deferred ? null : landed, usesCallerBytes: data === given && !owned };
}

/** Number of device blocks a write of `length` bytes at `offset` allocates. */
export function blocksSpanned(offset: number, length: number): number {
  if (length === 0) return 0;
  return Math.ceil((offset + length) / BLOCK_BYTES) - Math.floor(offset / BLOCK_BYTES);
}

/**
 * Writes `data` at `offset`, merging partial first and last blocks with what they held. The file
 * maps the new data when this returns; the returned promise lands it on the device (`data` must
 * not change until then).
 */
export async function writeData(
  store: VolumeStore,
  inode: Inode,
  offset: number,
  data: Uint8Array,
): Promise<Landing> {
  const end = offset + data.length;
  const first = Math.floor(offset / BLOCK_BYTES);
  const count = Math.ceil(end / BLOCK_BYTES) - first;
  let buffer: Uint8Array;
  if (offset % BLOCK_BYTES === 0 && data.length % BLOCK_BYTES === 0) {
    buffer = data;
  } else {
    buffer =
      count * BLOCK_BYTES <= DEFERRED_WRITE_BYTES_MAX
        ? store.slab.take(count)
        : new Uint8Array(count * BLOCK_BYTES);
    if (offset % BLOCK_BYTES !== 0 && first * BLOCK_BYTES < inode.size) {
      buffer.set((await readBlocks(store, inode.ino, first, 1)).bytes, 0);
    }
    const lastBlock = first + count - 1;
    if (
      end % BLOCK_BYTES !== 0 &&
      (lastBlock !== first || offset % BLOCK_BYTES === 0) &&
      lastBlock * BLOCK_BYTES < inode.size
    ) {
      buffer.set((await readBlocks(store, inode.ino, lastBlock, 1)).bytes, (count - 1) * BLOCK_BYTES);
    }
    buffer.set(data, offset - first * BLOCK_BYTES);
  }
  const landing = await writeBlocks(store, inode, first, buffer, buffer !== data);
  inode.size = Math.max(inode.size, end);
  return landing;
}

/** Sets the file size; shrinking frees blocks and zeroes the tail of the new last block. */
export async function truncateData(store: VolumeStore, inode: Inode, size: number): Promise<void> {
  if (size < inode.size) {
    const keep = Math.ceil(size / BLOCK_BYTES);
    await remap(store, inode, keep, KEY_OFFSET_MAX - keep, []);
    const tail = size % BLOCK_BYTES;
    if (tail !== 0) {
      const lastBlock = keep - 1;
      const mapped = await extentsOverlapping(store, inode.ino, lastBlock, lastBlock);
      if (mapped.length > 0) {
        // One block is never pooled: this buffer is ours to change and keep.
        const block = (await readBlocks(store, inode.ino, lastBlock, 1)).bytes;
        block.fill(0, tail);
        await writeBlocks(store, inode, lastBlock, block, true);
      }
    }
  }
  inode.size = size;
}

/** Frees every data block of a file that is being deleted. */
export async function freeAllData(store: VolumeStore, inode: Inode): Promise<void> {
  await remap(store, inode, 0, KEY_OFFSET_MAX, []);
}
