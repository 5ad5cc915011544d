import { checkReadRange, checkWriteRange } from "./check-range.ts";
import { SparseBlockStore } from "./sparse-store.ts";
import { type BlockDevice, BlockDeviceError } from "./types.ts";

/** A device in memory, for tests and the simulator. Nothing is lost on "power off": flush is a no-op. */
export class MemoryBlockDevice implements BlockDevice {
  readonly blockCount: number;
  readonly holdsWritesBack = true;
  readonly #store: SparseBlockStore;
  #closed = false;

  /** `blocks` (copied) gives initial contents; absent blocks read as zeros. */
  constructor(blockCount: number, blocks?: ReadonlyMap<number, Uint8Array>) {
    this.#store = SparseBlockStore.forDevice(blockCount, blocks);
    this.blockCount = blockCount;
  }

  async read(blockIndex: number, blockCount: number): Promise<Uint8Array> {
    this.#checkOpen(blockIndex);
    checkReadRange(this.blockCount, blockIndex, blockCount);
    return this.#store.read(blockIndex, blockCount);
  }

  async write(blockIndex: number, data: Uint8Array): Promise<void> {
    this.#checkOpen(blockIndex);
    checkWriteRange(this.blockCount, blockIndex, data);
    this.#store.write(blockIndex, data);
  }

  async flush(): Promise<void> {
    this.#checkOpen(undefined);
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  /** Every block ever written, deep-copied. */
  snapshotBlocks(): Map<number, Uint8Array> {
    return this.#store.snapshot();
  }

  #checkOpen(blockIndex: number | undefined): void {
    if (this.#closed) throw new BlockDeviceError("IO", "memory device is closed", blockIndex);
  }
}
