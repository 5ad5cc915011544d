import { randomBytes } from "node:crypto";
import type { BlockDevice } from "../block/index.ts";
import { BLOCK_BYTES, BlockDeviceError } from "../block/index.ts";
import { assert, assertionFailed } from "../util/assert.ts";
import { crc32 } from "../util/crc32.ts";
import { BlockAllocator, type BlockRun, bitmapKey } from "./allocator.ts";
import { NodeCache } from "./block-cache.ts";
import { coalesceBlocks } from "./block-runs.ts";
import { BlockSlab } from "./block-slab.ts";
import { CowTree } from "./cow-tree.ts";
import { DataLanding } from "./data-landing.ts";
import { FsError } from "./errors.ts";
import { IntentLog, readIntentLog } from "./intent-log.ts";
import type { IntentOp } from "./intent-ops.ts";
import { decodeInode, encodeInode, type Inode, inodeKey } from "./items.ts";
import { FIRST_USER_INO, RESERVED_BLOCK_COUNT, SUPERBLOCK_SLOT_BLOCKS } from "./layout.ts";
import { decodeSuperblock, encodeSuperblock, type Superblock } from "./superblock.ts";

/** The device does not hold a Flotilla volume (no valid superblock). */
export class NotAVolumeError extends Error {
  override name = "NotAVolumeError";
}

/** Writes in flight at once when a commit writes its blocks. */
const COMMIT_WRITES_IN_FLIGHT_MAX = 8;

/** Wraps device failures as FsError IO naming the block. */
export function deviceError(error: unknown, what: string): FsError {
  if (error instanceof FsError) return error;
  if (error instanceof BlockDeviceError) {
    const at = error.blockIndex === undefined ? {} : { blockIndex: error.blockIndex };
    return new FsError("IO", `${what}: ${error.message}`, { ...at, cause: error });
  }
  return new FsError("IO", `${what}: ${String(error)}`, { cause: error });
}

/** Runs `tasks` with at most `limit` in flight. */
async function runBounded(tasks: Array<() => Promise<void>>, limit: number): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < tasks.length) await tasks[next++]!();
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
}

/**
 * The storage engine of a volume: the tree, the allocator and the transaction groups. It knows
 * nothing of permissions or names; the Volume above it does. Callers serialize access (the
 * volume's lock): every method assumes it runs alone.
 */
export class VolumeStore {
  readonly device: BlockDevice;
  readonly cache: NodeCache;
  readonly tree: CowTree;
  readonly allocator: BlockAllocator;
  readonly volumeId: Uint8Array;
  readonly createdSec: number;
  readonly blockCount: number;
  /** The last committed transaction group. */
  txg: number;
  nextIno: number;
  inodeCount: number;
  /** Data blocks written since the last commit. */
  dirtyDataBlocks = 0;
  /** Data writes still on their way to the device. A failed one fails the volume, as a failed commit does: the tree already maps its blocks. */
  readonly landing: DataLanding;
  /** Namespace changes since the last commit, on their way to (or in) the intent log. */
  readonly intentLog: IntentLog;
  /** Called when the intent log needs a commit (its ring is full, or a write to it failed). */
  onIntentLogFull: () => void = () => {};
  /** Operations found in the intent log at open, for the volume to replay. */
  logged: IntentOp[] = [];
  /** Where small data buffers are cut from. */
  readonly slab = new BlockSlab();
  /** Set when a commit failed half-way: the in-memory state can no longer be trusted. */
  failure: FsError | null = null;

  private constructor(device: BlockDevice, sb: Superblock, cacheBytes: number | undefined, fresh: boolean) {
    this.device = device;
    this.cache = new NodeCache(cacheBytes);
    this.intentLog = new IntentLog(device, sb.volumeId, sb.txg, sb.logHead, () => this.onIntentLogFull());
    this.landing = new DataLanding(device, (error, start) => {
      this.failure ??= deviceError(error, `data write at block ${start} failed; remount the volume`);
    });
    this.volumeId = sb.volumeId;
    this.createdSec = sb.createdSec;
    this.blockCount = sb.blockCount;
    this.txg = sb.txg;
    this.nextIno = sb.nextIno;
    this.inodeCount = sb.inodeCount;
    const release = (block: number): void => this.allocator.release(block);
    this.tree = fresh
      ? CowTree.empty(device, this.cache, release)
      : new CowTree(device, this.cache, { block: sb.rootBlock, crc: sb.rootCrc, dirty: null }, release);
    this.allocator = new BlockAllocator(sb.blockCount, sb.usedBlocks, (g) => this.tree.get(bitmapKey(g)));
  }

  /** An empty store for mkfs: wipes the reserved area (old superblocks included) first. */
  static async format(device: BlockDevice, createdSec: number, volumeId?: Uint8Array): Promise<VolumeStore> {
    if (device.blockCount < RESERVED_BLOCK_COUNT + 64) {
      throw new RangeError(
        `a volume needs at least ${RESERVED_BLOCK_COUNT + 64} blocks; the device has ${device.blockCount}`,
      );
    }
    try {
      await device.write(0, new Uint8Array(RESERVED_BLOCK_COUNT * BLOCK_BYTES));
      await device.flush();
    } catch (error) {
      throw deviceError(error, "cannot clear the superblock area");
    }
    const sb: Superblock = {
      txg: 0,
      blockCount: device.blockCount,
      rootBlock: 0,
      rootCrc: 0,
      usedBlocks: RESERVED_BLOCK_COUNT,
      nextIno: FIRST_USER_INO,
      inodeCount: 0,
      volumeId: volumeId ?? new Uint8Array(randomBytes(16)),
      createdSec,
      logHead: 0,
    };
    return new VolumeStore(device, sb, undefined, true);
  }

  /** Opens the newest valid transaction group on the device. */
  static async open(device: BlockDevice, cacheBytes?: number): Promise<VolumeStore> {
    let slots: Uint8Array;
    try {
      slots = await device.read(0, SUPERBLOCK_SLOT_BLOCKS.length);
    } catch (error) {
      throw deviceError(error, "cannot read the superblocks");
    }
    const found: Superblock[] = [];
    const reasons: string[] = [];
    for (const slot of SUPERBLOCK_SLOT_BLOCKS) {
      const decoded = decodeSuperblock(slots.subarray(slot * BLOCK_BYTES, (slot + 1) * BLOCK_BYTES));
      if (typeof decoded === "string") reasons.push(`slot ${slot}: ${decoded}`);
      else found.push(decoded);
    }
    const sb = found.sort((a, b) => b.txg - a.txg)[0];
    if (sb === undefined) throw new NotAVolumeError(`not a Flotilla volume (${reasons.join("; ")})`);
    if (sb.blockCount > device.blockCount) {
      throw new NotAVolumeError(
        `the volume needs ${sb.blockCount} blocks but the device has only ${device.blockCount}`,
      );
    }
    const store = new VolumeStore(device, sb, cacheBytes, false);
    await store.tree.load(store.tree.root);
    try {
      store.logged = await readIntentLog(device, sb.volumeId, sb.txg, sb.logHead);
    } catch (error) {
      throw deviceError(error, "cannot read the intent log");
    }
    return store;
  }

  /** Generation of a new inode: never equal for the same number on two volumes made by mkfs. */
  generationFor(ino: number): number {
    const bytes = new Uint8Array(8);
    new DataView(bytes.buffer).setFloat64(0, ino, true);
    return ((crc32(bytes, crc32(this.volumeId)) >>> 0) & 0x7fffffff) + 1;
  }

  async getInode(ino: number): Promise<Inode | null> {
    if (!Number.isSafeInteger(ino) || ino < 1) return null;
    const bytes = await this.tree.get(inodeKey(ino));
    return bytes === undefined ? null : decodeInode(bytes);
  }

  async putInode(inode: Inode): Promise<void> {
    if (!(inode.nlink >= 0)) assertionFailed(`inode ${inode.ino} with negative link count`);
    await this.tree.put(inodeKey(inode.ino), encodeInode(inode));
  }

  async deleteInode(ino: number): Promise<void> {
    const existed = await this.tree.delete(inodeKey(ino));
    if (!existed) assertionFailed(`deleting inode ${ino} that does not exist`);
    this.inodeCount--;
  }

  allocateIno(): number {
    return this.nextIno++;
  }

  /** Allocates `count` data blocks as one or more contiguous runs. The caller checked space. */
  async allocateData(count: number): Promise<BlockRun[]> {
    const runs: BlockRun[] = [];
    let left = count;
    while (left > 0) {
      const run = await this.allocator.allocate(left);
      runs.push(run);
      left -= run.count;
    }
    this.dirtyDataBlocks += count;
    return runs;
  }

  get hasChanges(): boolean {
    return this.tree.root.dirty !== null;
  }

  /**
   * Commits the open transaction group: allocates blocks for every changed node (and records those
   * allocations in the bitmap items, until that settles), writes the nodes, flushes, writes the
   * superblock into slot txg % 2, flushes again. Any failure leaves the volume failed.
   */
  async commit(): Promise<void> {
    if (this.failure !== null) throw this.failure;
    if (!this.hasChanges) return;
    const txg = this.txg + 1;
    // Under the volume's lock: no operation is appended until this commit is done.
    const logged = this.intentLog.beginCommit();
    try {
      // The flush below covers only writes that finished before it.
      await this.landing.settled();
      await this.landing.flushedAhead();
      await this.settleAllocations();
      const blocks = this.tree.finalize(txg);
      const runs = coalesceBlocks(blocks);
      await runBounded(
        runs.map((run) => () => this.device.write(run.start, run.data)),
        COMMIT_WRITES_IN_FLIGHT_MAX,
      );
      await this.device.flush();
      const root = this.tree.root;
      assert(root.dirty === null && root.block >= RESERVED_BLOCK_COUNT, "commit left the root unwritten");
      const sb: Superblock = {
        txg,
        blockCount: this.blockCount,
        rootBlock: root.block,
        rootCrc: root.crc,
        usedBlocks: this.allocator.committedUsedBlocks,
        nextIno: this.nextIno,
        inodeCount: this.inodeCount,
        volumeId: this.volumeId,
        createdSec: this.createdSec,
        logHead: logged.head,
      };
      await this.device.write(SUPERBLOCK_SLOT_BLOCKS[txg % 2]!, encodeSuperblock(sb));
      await this.device.flush();
    } catch (error) {
      this.failure = deviceError(error, `commit of transaction group ${txg} failed; remount the volume`);
      this.intentLog.fail(this.failure);
      throw this.failure;
    }
    assert(txg > this.txg, "transaction group went backwards");
    this.txg = txg;
    this.intentLog.commitDone(txg, logged);
    this.allocator.commitDone();
    this.dirtyDataBlocks = 0;
  }

  private async settleAllocations(): Promise<void> {
    for (let round = 0; ; round++) {
      assert(round < 100, "commit allocations did not settle");
      const groups = await this.allocator.groupsToPersist();
      for (const { groupIndex, bits } of groups) await this.tree.put(bitmapKey(groupIndex), bits);
      const nodes = this.tree.unaddressedNodes();
      if (groups.length === 0 && nodes.length === 0) return;
      let i = 0;
      while (i < nodes.length) {
        const run = await this.allocator.allocate(nodes.length - i);
        for (let k = 0; k < run.count; k++) nodes[i + k]!.addr = run.start + k;
        i += run.count;
      }
    }
  }
}
