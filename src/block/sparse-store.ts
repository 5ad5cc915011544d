import { assertionFailed } from "../util/assert.ts";
import { BLOCK_BYTES } from "./types.ts";

/**
 * Blocks held in memory, only those ever written: an absent block reads as zeros.
 * Callers validate ranges first; this only copies bytes, so no caller buffer is ever kept or handed out.
 */
export class SparseBlockStore {
  readonly #blocks = new Map<number, Uint8Array>();

  /** Copies `blocks` in; every entry must be exactly one block. */
  constructor(blocks?: ReadonlyMap<number, Uint8Array>) {
    if (blocks === undefined) return;
    for (const [blockIndex, data] of blocks) {
      if (!(Number.isSafeInteger(blockIndex) && blockIndex >= 0))
        assertionFailed(`bad block index ${blockIndex}`);
      if (!(data.length === BLOCK_BYTES))
        assertionFailed(`block ${blockIndex} holds ${data.length} bytes, not one block`);
      this.#blocks.set(blockIndex, data.slice());
    }
  }

  /** A store for a device of `blockCount` blocks, starting from a copy of `blocks`; RangeError if they do not fit. */
  static forDevice(blockCount: number, blocks?: ReadonlyMap<number, Uint8Array>): SparseBlockStore {
    if (!Number.isSafeInteger(blockCount) || blockCount < 1) {
      throw new RangeError(`block count must be a positive integer, got ${blockCount}`);
    }
    const store = new SparseBlockStore(blocks);
    for (const blockIndex of store.#blocks.keys()) {
      if (blockIndex >= blockCount) {
        throw new RangeError(`initial block ${blockIndex} lies outside a device of ${blockCount} blocks`);
      }
    }
    return store;
  }

  /** The blocks held, without copying: for building another store or device, which copies. Do not mutate. */
  get view(): ReadonlyMap<number, Uint8Array> {
    return this.#blocks;
  }

  read(blockIndex: number, blockCount: number): Uint8Array {
    const out = new Uint8Array(blockCount * BLOCK_BYTES);
    for (let i = 0; i < blockCount; i++) {
      const block = this.#blocks.get(blockIndex + i);
      if (block !== undefined) out.set(block, i * BLOCK_BYTES);
    }
    return out;
  }

  /** `data` is whole blocks; each block is copied. */
  write(blockIndex: number, data: Uint8Array): void {
    const blockCount = data.length / BLOCK_BYTES;
    for (let i = 0; i < blockCount; i++) {
      this.#blocks.set(blockIndex + i, data.slice(i * BLOCK_BYTES, (i + 1) * BLOCK_BYTES));
    }
  }

  flipBit(blockIndex: number, bitIndex: number): void {
    let block = this.#blocks.get(blockIndex);
    if (block === undefined) {
      block = new Uint8Array(BLOCK_BYTES);
      this.#blocks.set(blockIndex, block);
    }
    const byteIndex = bitIndex >>> 3;
    block[byteIndex] = (block[byteIndex] ?? 0) ^ (1 << (bitIndex & 7));
  }

  /** A deep copy: later writes to the store do not show in it, nor the other way round. */
  snapshot(): Map<number, Uint8Array> {
    const copy = new Map<number, Uint8Array>();
    for (const [blockIndex, block] of this.#blocks) copy.set(blockIndex, block.slice());
    return copy;
  }
}
