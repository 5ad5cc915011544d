import type { Random } from "../util/random.ts";
import { checkReadRange, checkWriteRange } from "./check-range.ts";
import { MemoryBlockDevice } from "./memory-device.ts";
import { SparseBlockStore } from "./sparse-store.ts";
import { BLOCK_BYTES, type BlockDevice, BlockDeviceError } from "./types.ts";

const BLOCK_BITS = BLOCK_BYTES * 8;

/**
 * One event in the device's history. A multi-block write is logged block by block because a real
 * device may tear it at any block. Bit flips are media damage: they stay in the history so that every
 * image taken after them shows them too.
 */
type HistoryEvent =
  | { readonly kind: "write"; readonly blockIndex: number; readonly data: Uint8Array }
  | { readonly kind: "flip"; readonly blockIndex: number; readonly bitIndex: number };

/**
 * An in-memory device for crash and fault tests: it keeps every block write since creation, so a test
 * can rebuild the device as it would be after a power cut at any point, and it injects failures on demand.
 */
export class FaultyBlockDevice implements BlockDevice {
  readonly blockCount: number;
  readonly holdsWritesBack = true;
  readonly #initial: SparseBlockStore;
  readonly #current: SparseBlockStore;
  readonly #history: HistoryEvent[] = [];
  #writeCount = 0;
  #flushCount = 0;
  /** Block writes that a completed flush made durable. */
  #flushedWriteCount = 0;
  /** Write calls still allowed to succeed before one fails; undefined = no failure planned. */
  #writeCallsBeforeFailure: number | undefined;
  #flushCallsBeforeFailure: number | undefined;
  #poweredOff = false;
  #closed = false;

  constructor(blockCount: number, initial?: ReadonlyMap<number, Uint8Array>) {
    this.#initial = SparseBlockStore.forDevice(blockCount, initial);
    this.#current = new SparseBlockStore(this.#initial.view);
    this.blockCount = blockCount;
  }

  /** Single-block writes so far: a write of N blocks counts N. */
  get writeCount(): number {
    return this.#writeCount;
  }

  /** Flushes that completed. */
  get flushCount(): number {
    return this.#flushCount;
  }

  /** Block writes since the last completed flush: the ones a power cut may lose. */
  get unflushedWriteCount(): number {
    return this.#writeCount - this.#flushedWriteCount;
  }

  async read(blockIndex: number, blockCount: number): Promise<Uint8Array> {
    this.#checkUsable(blockIndex);
    checkReadRange(this.blockCount, blockIndex, blockCount);
    return this.#current.read(blockIndex, blockCount);
  }

  async write(blockIndex: number, data: Uint8Array): Promise<void> {
    this.#checkUsable(blockIndex);
    const blockCount = checkWriteRange(this.blockCount, blockIndex, data);
    if (this.#writeCallsBeforeFailure !== undefined) {
      if (this.#writeCallsBeforeFailure === 0) {
        this.#writeCallsBeforeFailure = undefined;
        throw new BlockDeviceError("IO", `injected write failure at block ${blockIndex}`, blockIndex);
      }
      this.#writeCallsBeforeFailure--;
    }
    for (let i = 0; i < blockCount; i++) {
      const block = data.slice(i * BLOCK_BYTES, (i + 1) * BLOCK_BYTES);
      this.#history.push({ kind: "write", blockIndex: blockIndex + i, data: block });
    }
    this.#current.write(blockIndex, data);
    this.#writeCount += blockCount;
  }

  async flush(): Promise<void> {
    this.#checkUsable(undefined);
    if (this.#flushCallsBeforeFailure !== undefined) {
      if (this.#flushCallsBeforeFailure === 0) {
        this.#flushCallsBeforeFailure = undefined;
        throw new BlockDeviceError("IO", "injected flush failure");
      }
      this.#flushCallsBeforeFailure--;
    }
    this.#flushedWriteCount = this.#writeCount;
    this.#flushCount++;
  }

  /** Closing after a power-off succeeds: releasing a dead device is harmless and eases test cleanup. */
  async close(): Promise<void> {
    this.#closed = true;
  }

  /** The device as it would be had power failed right after the first `writeCount` block writes. */
  imageAfterWrites(writeCount: number): MemoryBlockDevice {
    if (!Number.isSafeInteger(writeCount) || writeCount < 0 || writeCount > this.#writeCount) {
      throw new RangeError(`write count must be in 0..${this.#writeCount}, got ${writeCount}`);
    }
    return this.#image((writeIndex) => writeIndex < writeCount, writeCount);
  }

  /** The device after a power cut now: every write since the last completed flush is lost. */
  imageAfterPowerCut(): MemoryBlockDevice {
    const flushed = this.#flushedWriteCount;
    return this.#image((writeIndex) => writeIndex < flushed, this.#writeCount);
  }

  /** The device after a power cut that kept all flushed writes and a random subset of the later ones. */
  imageWithRandomUnflushedSubset(random: Random): MemoryBlockDevice {
    const flushed = this.#flushedWriteCount;
    return this.#image((writeIndex) => writeIndex < flushed || random.int(2) === 1, this.#writeCount);
  }

  /** Lets `n` more write calls succeed, then fails the next one without writing anything. */
  failWriteAfter(n: number): void {
    this.#writeCallsBeforeFailure = checkCallCount(n);
  }

  /** Lets `n` more flush calls succeed, then fails the next one (it makes nothing durable). */
  failFlushAfter(n: number): void {
    this.#flushCallsBeforeFailure = checkCallCount(n);
  }

  /** Damages the medium: flips one bit of a stored block, here and in every image taken from now on. */
  flipBit(blockIndex: number, bitIndex: number): void {
    checkReadRange(this.blockCount, blockIndex, 1);
    if (!Number.isSafeInteger(bitIndex) || bitIndex < 0 || bitIndex >= BLOCK_BITS) {
      throw new RangeError(`bit index must be in 0..${BLOCK_BITS - 1}, got ${bitIndex}`);
    }
    this.#history.push({ kind: "flip", blockIndex, bitIndex });
    this.#current.flipBit(blockIndex, bitIndex);
  }

  /** Simulates a crash: every later read, write and flush fails, so a volume still holding us cannot write. */
  powerOff(): void {
    this.#poweredOff = true;
  }

  /**
   * Replays the history onto the initial contents. `keepWrite` decides, in order, which block writes
   * survive; bit flips that happened before write number `writesHappened` always apply.
   */
  #image(keepWrite: (writeIndex: number) => boolean, writesHappened: number): MemoryBlockDevice {
    const store = new SparseBlockStore(this.#initial.view);
    let writeIndex = 0;
    for (const event of this.#history) {
      if (event.kind === "flip") {
        store.flipBit(event.blockIndex, event.bitIndex);
        continue;
      }
      if (writeIndex >= writesHappened) break;
      if (keepWrite(writeIndex)) store.write(event.blockIndex, event.data);
      writeIndex++;
    }
    return new MemoryBlockDevice(this.blockCount, store.view);
  }

  #checkUsable(blockIndex: number | undefined): void {
    if (this.#poweredOff) throw new BlockDeviceError("IO", "device powered off", blockIndex);
    if (this.#closed) throw new BlockDeviceError("IO", "faulty device is closed", blockIndex);
  }
}

function checkCallCount(n: number): number {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`call count must be >= 0, got ${n}`);
  return n;
}
