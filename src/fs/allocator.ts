import { assert, assertionFailed } from "../util/assert.ts";
import { FsError } from "./errors.ts";
import {
  GROUP_BITMAP_BYTES,
  GROUP_BLOCKS,
  ItemType,
  type Key,
  key,
  RESERVED_BLOCK_COUNT,
  SPACE_OID,
} from "./layout.ts";

interface Group {
  /** 1 = in use, or freed in the open transaction group and not yet reusable. */
  readonly bits: Uint8Array;
  freeCount: number;
  /** The group's item in the tree is out of date. */
  needsPersist: boolean;
}

export interface BlockRun {
  readonly start: number;
  readonly count: number;
}

export function bitmapKey(groupIndex: number): Key {
  return key(SPACE_OID, ItemType.BITMAP, groupIndex);
}

function popFree(bits: Uint8Array): number {
  let used = 0;
  for (const byte of bits) {
    let b = byte;
    while (b !== 0) {
      b &= b - 1;
      used++;
    }
  }
  return GROUP_BLOCKS - used;
}

/**
 * Hands out device blocks. The allocation bitmap lives in the tree, one item per group of 15,360
 * blocks, loaded on first use so that mounting costs nothing. A block freed in transaction group N
 * that the last commit still references becomes reusable only once N has committed; a block
 * allocated and freed within N is reusable at once.
 */
export class BlockAllocator {
  readonly blockCount: number;
  /** Blocks in use, counting those freed in the open transaction group. */
  usedBlocks: number;
  private readonly groups = new Map<number, Group>();
  private readonly pendingFree = new Map<number, number[]>();
  private pendingFreeCount = 0;
  private readonly allocatedThisTxg = new Set<number>();
  private cursor = RESERVED_BLOCK_COUNT;
  /** Groups with pending frees already marked for rewriting in this transaction group. */
  private readonly persistedOnce = new Set<number>();
  private readonly loadGroupItem: (groupIndex: number) => Promise<Uint8Array | undefined>;

  constructor(
    blockCount: number,
    usedBlocks: number,
    loadGroupItem: (groupIndex: number) => Promise<Uint8Array | undefined>,
  ) {
    if (!(usedBlocks <= blockCount))
      assertionFailed(`used blocks ${usedBlocks} exceed the device's ${blockCount}`);
    this.blockCount = blockCount;
    this.usedBlocks = usedBlocks;
    this.loadGroupItem = loadGroupItem;
  }

  get groupCount(): number {
    return Math.ceil(this.blockCount / GROUP_BLOCKS);
  }

  /** Blocks that can be allocated right now. */
  get freeBlocks(): number {
    return this.blockCount - this.usedBlocks;
  }

  /** Blocks freed in the open transaction group that become free when it commits. */
  get pendingFreeBlocks(): number {
    return this.pendingFreeCount;
  }

  /** What the next commit records as used. */
  get committedUsedBlocks(): number {
    return this.usedBlocks - this.pendingFreeCount;
  }

  /** The bits a fresh group starts with: reserved blocks and blocks past the device end are in use. */
  private initialBits(groupIndex: number): Uint8Array {
    const bits = new Uint8Array(GROUP_BITMAP_BYTES);
    const first = groupIndex * GROUP_BLOCKS;
    for (let i = 0; i < GROUP_BLOCKS; i++) {
      const block = first + i;
      if (block < RESERVED_BLOCK_COUNT || block >= this.blockCount) bits[i >> 3]! |= 1 << (i & 7);
    }
    return bits;
  }

  async group(groupIndex: number): Promise<Group> {
    if (!(groupIndex >= 0 && groupIndex < this.groupCount))
      assertionFailed(`group ${groupIndex} out of range`);
    const known = this.groups.get(groupIndex);
    if (known !== undefined) return known;
    const stored = await this.loadGroupItem(groupIndex);
    const again = this.groups.get(groupIndex);
    if (again !== undefined) return again;
    if (stored !== undefined && stored.length !== GROUP_BITMAP_BYTES) {
      throw new FsError("IO", `allocation bitmap of group ${groupIndex} has ${stored.length} bytes`);
    }
    const bits = stored === undefined ? this.initialBits(groupIndex) : stored.slice();
    const loaded: Group = { bits, freeCount: popFree(bits), needsPersist: stored === undefined };
    this.groups.set(groupIndex, loaded);
    return loaded;
  }

  /**
   * Allocates a run of up to `want` contiguous blocks (at least one). Throws NOSPC when the device
   * is full; callers keep their own reserve for metadata through `freeBlocks`.
   */
  async allocate(want: number): Promise<BlockRun> {
    assert(want >= 1, "allocating nothing");
    if (this.freeBlocks < 1) throw new FsError("NOSPC", "no free blocks on the volume");
    const groupCount = this.groupCount;
    let groupIndex = Math.floor(this.cursor / GROUP_BLOCKS);
    for (let visited = 0; visited <= groupCount; visited++) {
      if (groupIndex >= groupCount) groupIndex = 0;
      const group = await this.group(groupIndex);
      if (group.freeCount > 0) {
        const startBit = visited === 0 ? this.cursor - groupIndex * GROUP_BLOCKS : 0;
        const run =
          this.takeRun(groupIndex, group, startBit, want) ?? this.takeRun(groupIndex, group, 0, want);
        if (run !== null) return run;
      }
      groupIndex++;
    }
    throw new FsError("NOSPC", "no free blocks found on the volume");
  }

  private takeRun(groupIndex: number, group: Group, startBit: number, want: number): BlockRun | null {
    const bits = group.bits;
    let i = Math.max(0, startBit);
    while (i < GROUP_BLOCKS) {
      if ((i & 7) === 0 && bits[i >> 3] === 0xff) {
        i += 8;
        continue;
      }
      if ((bits[i >> 3]! & (1 << (i & 7))) === 0) break;
      i++;
    }
    if (i >= GROUP_BLOCKS) return null;
    let count = 0;
    while (
      count < want &&
      i + count < GROUP_BLOCKS &&
      (bits[(i + count) >> 3]! & (1 << ((i + count) & 7))) === 0
    ) {
      bits[(i + count) >> 3]! |= 1 << ((i + count) & 7);
      count++;
    }
    const start = groupIndex * GROUP_BLOCKS + i;
    assert(
      start >= RESERVED_BLOCK_COUNT && start + count <= this.blockCount,
      `allocated run ${start}+${count} outside the device`,
    );
    for (let b = start; b < start + count; b++) this.allocatedThisTxg.add(b);
    group.freeCount -= count;
    group.needsPersist = true;
    this.usedBlocks += count;
    this.cursor = start + count;
    return { start, count };
  }

  /** Frees one block. Synchronous: a block the last commit references only becomes pending. */
  release(block: number): void {
    assert(
      block >= RESERVED_BLOCK_COUNT && block < this.blockCount,
      `freeing block ${block} outside the data area`,
    );
    const groupIndex = Math.floor(block / GROUP_BLOCKS);
    if (this.allocatedThisTxg.delete(block)) {
      const group = this.groups.get(groupIndex);
      if (!(group !== undefined)) assertionFailed(`block ${block} allocated from a group that is not loaded`);
      const bit = block - groupIndex * GROUP_BLOCKS;
      if (!((group.bits[bit >> 3]! & (1 << (bit & 7))) !== 0)) assertionFailed(`block ${block} freed twice`);
      group.bits[bit >> 3]! &= ~(1 << (bit & 7));
      group.freeCount++;
      group.needsPersist = true;
      this.usedBlocks--;
      return;
    }
    const pending = this.pendingFree.get(groupIndex);
    if (pending === undefined) this.pendingFree.set(groupIndex, [block]);
    else pending.push(block);
    this.pendingFreeCount++;
    const group = this.groups.get(groupIndex);
    if (group !== undefined) {
      const bit = block - groupIndex * GROUP_BLOCKS;
      if (!((group.bits[bit >> 3]! & (1 << (bit & 7))) !== 0))
        assertionFailed(`freeing block ${block} that is not in use`);
      group.needsPersist = true;
    }
  }

  /**
   * Commit: the bitmap items that must be rewritten, as the commit records them (pending frees
   * cleared). Loads groups that only have pending frees. Returns nothing to do once stable.
   */
  async groupsToPersist(): Promise<Array<{ groupIndex: number; bits: Uint8Array }>> {
    for (const groupIndex of this.pendingFree.keys()) {
      const group = await this.group(groupIndex);
      if (!this.persistedOnce.has(groupIndex)) group.needsPersist = true;
      this.persistedOnce.add(groupIndex);
    }
    const out: Array<{ groupIndex: number; bits: Uint8Array }> = [];
    for (const [groupIndex, group] of this.groups) {
      if (!group.needsPersist) continue;
      group.needsPersist = false;
      const bits = group.bits.slice();
      for (const block of this.pendingFree.get(groupIndex) ?? []) {
        const bit = block - groupIndex * GROUP_BLOCKS;
        assert(
          (bits[bit >> 3]! & (1 << (bit & 7))) !== 0,
          `pending free block ${block} is not marked in use`,
        );
        bits[bit >> 3]! &= ~(1 << (bit & 7));
      }
      out.push({ groupIndex, bits });
    }
    return out;
  }

  /** The commit is durable: pending frees become allocatable. */
  commitDone(): void {
    for (const [groupIndex, blocks] of this.pendingFree) {
      const group = this.groups.get(groupIndex);
      if (!(group !== undefined)) assertionFailed(`group ${groupIndex} with pending frees is not loaded`);
      for (const block of blocks) {
        const bit = block - groupIndex * GROUP_BLOCKS;
        if (!((group.bits[bit >> 3]! & (1 << (bit & 7))) !== 0))
          assertionFailed(`pending free block ${block} freed twice`);
        group.bits[bit >> 3]! &= ~(1 << (bit & 7));
        group.freeCount++;
        this.usedBlocks--;
      }
    }
    this.pendingFree.clear();
    this.pendingFreeCount = 0;
    this.persistedOnce.clear();
    this.allocatedThisTxg.clear();
  }

  /** Whether `block` is marked in use (loads its group). For fsck and assertions. */
  async isMarkedUsed(block: number): Promise<boolean> {
    const groupIndex = Math.floor(block / GROUP_BLOCKS);
    const group = await this.group(groupIndex);
    const bit = block - groupIndex * GROUP_BLOCKS;
    return (group.bits[bit >> 3]! & (1 << (bit & 7))) !== 0;
  }

  /**
   * Repair: replaces the allocation state with the walked truth (`used`: one bit per block).
   * Only between transaction groups, with nothing pending.
   */
  resetFromUsed(used: Uint8Array): void {
    assert(
      this.pendingFreeCount === 0 && this.allocatedThisTxg.size === 0,
      "resetting the allocator mid-transaction",
    );
    let usedCount = 0;
    for (let g = 0; g < this.groupCount; g++) {
      const bits = this.initialBits(g);
      for (let i = 0; i < GROUP_BLOCKS; i++) {
        const block = g * GROUP_BLOCKS + i;
        if (block >= this.blockCount) break;
        if ((used[block >> 3]! & (1 << (block & 7))) !== 0) bits[i >> 3]! |= 1 << (i & 7);
        if ((bits[i >> 3]! & (1 << (i & 7))) !== 0) usedCount++;
      }
      this.groups.set(g, { bits, freeCount: popFree(bits), needsPersist: true });
    }
    this.usedBlocks = usedCount;
  }
}
