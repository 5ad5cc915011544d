/** Every block device speaks in 4 KiB blocks. */
export const BLOCK_BYTES = 4096;

/** The largest run one read or write call may move (4 MiB); callers split bigger transfers. */
export const BLOCK_RUN_COUNT_MAX = 1024;

export type BlockDeviceErrorCode =
  /** The device is gone, closed, or its medium failed. */
  | "IO"
  /** A block index or run lies outside the device. */
  | "RANGE"
  /** A storage server refused the caller's owner epoch (a newer owner holds the volume). */
  | "FENCED"
  /** The device could not be reached in time; the call may be retried. */
  | "TIMEOUT";

/** A typed failure of a block device call; `blockIndex` names the first block concerned. */
export class BlockDeviceError extends Error {
  override name = "BlockDeviceError";
  readonly code: BlockDeviceErrorCode;
  readonly blockIndex: number | undefined;
  constructor(
    code: BlockDeviceErrorCode,
    message: string,
    blockIndex?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.code = code;
    this.blockIndex = blockIndex;
  }
}

/**
 * A device of fixed-size blocks. Every call may fail with a BlockDeviceError.
 * Writes are durable only after a later `flush` resolves; until then any subset of them may be lost.
 */
export interface BlockDevice {
  /** Number of blocks on the device. */
  readonly blockCount: number;
  /**
   * True when small writes may wait in memory for the next flush and go to the device together (a
   * local file). False when each write must be tried at once: a remote volume refuses a fenced
   * owner's writes, and that owner must learn it at its first write, not at its next commit.
   */
  readonly holdsWritesBack: boolean;
  /** Reads `blockCount` blocks starting at `blockIndex`; the result is blockCount * BLOCK_BYTES long. */
  read(blockIndex: number, blockCount: number): Promise<Uint8Array>;
  /**
   * Reads `target.length / BLOCK_BYTES` blocks starting at `blockIndex` into `target`, for callers
   * that reuse their buffers. Optional: without it a caller reads and copies.
   */
  readInto?(blockIndex: number, target: Uint8Array): Promise<void>;
  /**
   * True when a write that has resolved keeps no reference to its `data`, so the caller may reuse
   * the buffer at once. Unset means it may (a cache, a retry queue): the caller must not reuse it.
   */
  readonly releasesWrittenData?: boolean;
  /** Writes whole blocks starting at `blockIndex`; `data.length` is a positive multiple of BLOCK_BYTES. */
  write(blockIndex: number, data: Uint8Array): Promise<void>;
  /** Durability barrier: every write that resolved before this call is on stable storage when it resolves. */
  flush(): Promise<void>;
  close(): Promise<void>;
}
