import { type FileHandle, open } from "node:fs/promises";
import { getSystemErrorMessage } from "node:util";
import { checkReadRange, checkWriteRange } from "./check-range.ts";
import { BLOCK_BYTES, type BlockDevice, BlockDeviceError } from "./types.ts";

/** Short transfers are retried, but a transfer that keeps making no progress is a host fault. */
const SHORT_TRANSFER_RETRIES_MAX = 64;

/**
 * A device backed by one sparse host file, with positional I/O: blocks never written read as zeros
 * and take no host space.
 */
export class FileBlockDevice implements BlockDevice {
  readonly blockCount: number;
  readonly holdsWritesBack = true;
  /** pwrite has copied the bytes into the page cache by the time a write resolves. */
  readonly releasesWrittenData = true;
  readonly path: string;
  #handle: FileHandle | undefined;

  private constructor(path: string, handle: FileHandle, blockCount: number) {
    this.path = path;
    this.#handle = handle;
    this.blockCount = blockCount;
  }

  /** Makes a new sparse file of `sizeBytes`; fails if `path` already exists. */
  static async create(path: string, sizeBytes: number): Promise<FileBlockDevice> {
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes % BLOCK_BYTES !== 0) {
      throw new RangeError(
        `device size must be a positive multiple of ${BLOCK_BYTES} bytes, got ${sizeBytes}`,
      );
    }
    const handle = await hostCall(`cannot create ${path}`, () => open(path, "wx+"));
    try {
      await hostCall(`cannot size ${path}`, () => handle.truncate(sizeBytes));
    } catch (error) {
      await handle.close().catch(() => {});
      throw error;
    }
    return new FileBlockDevice(path, handle, sizeBytes / BLOCK_BYTES);
  }

  /** Opens an existing device file; its size must be a non-zero multiple of the block size. */
  static async open(path: string): Promise<FileBlockDevice> {
    const handle = await hostCall(`cannot open ${path}`, () => open(path, "r+"));
    try {
      const { size } = await hostCall(`cannot stat ${path}`, () => handle.stat());
      if (size === 0 || size % BLOCK_BYTES !== 0) {
        throw new BlockDeviceError(
          "IO",
          `${path} is ${size} bytes, not a device file (size must be a non-zero multiple of ${BLOCK_BYTES})`,
        );
      }
      return new FileBlockDevice(path, handle, size / BLOCK_BYTES);
    } catch (error) {
      await handle.close().catch(() => {});
      throw error;
    }
  }

  async read(blockIndex: number, blockCount: number): Promise<Uint8Array> {
    const out = new Uint8Array(blockCount * BLOCK_BYTES);
    await this.readInto(blockIndex, out);
    return out;
  }

  async readInto(blockIndex: number, target: Uint8Array): Promise<void> {
    const handle = this.#openHandle(blockIndex);
    checkReadRange(this.blockCount, blockIndex, target.length / BLOCK_BYTES);
    await this.#transfer("read", blockIndex, target, async (offset, position) => {
      const { bytesRead } = await handle.read(target, offset, target.length - offset, position);
      return bytesRead;
    });
  }

  async write(blockIndex: number, data: Uint8Array): Promise<void> {
    const handle = this.#openHandle(blockIndex);
    checkWriteRange(this.blockCount, blockIndex, data);
    await this.#transfer("write", blockIndex, data, async (offset, position) => {
      const { bytesWritten } = await handle.write(data, offset, data.length - offset, position);
      return bytesWritten;
    });
  }

  async flush(): Promise<void> {
    const handle = this.#openHandle(undefined);
    await hostCall(`flush of ${this.path} failed`, () => handle.datasync());
  }

  async close(): Promise<void> {
    const handle = this.#handle;
    if (handle === undefined) return;
    this.#handle = undefined;
    await hostCall(`close of ${this.path} failed`, () => handle.close());
  }

  #openHandle(blockIndex: number | undefined): FileHandle {
    if (this.#handle === undefined) {
      throw new BlockDeviceError("IO", `device file ${this.path} is closed`, blockIndex);
    }
    return this.#handle;
  }

  /**
   * Moves `buffer` to or from the file at the block's position, in one host call unless the host
   * transfers less. A read that meets the end of the file stops there: the rest stays zeros.
   */
  async #transfer(
    what: "read" | "write",
    blockIndex: number,
    buffer: Uint8Array,
    step: (offset: number, position: number) => Promise<number>,
  ): Promise<void> {
    let offset = 0;
    for (let attempt = 0; offset < buffer.length; attempt++) {
      if (attempt >= SHORT_TRANSFER_RETRIES_MAX) {
        throw new BlockDeviceError(
          "IO",
          `${what} of block ${blockIndex} on ${this.path} stalled after ${attempt} short transfers`,
          blockIndex,
        );
      }
      const moved = await hostCall(
        `${what} of block ${blockIndex} on ${this.path} failed`,
        () => step(offset, blockIndex * BLOCK_BYTES + offset),
        blockIndex,
      );
      if (moved === 0 && what === "read") return;
      offset += moved;
    }
  }
}

/** Runs a host call, turning its failure into a BlockDeviceError that keeps the host error as cause. */
async function hostCall<T>(what: string, call: () => Promise<T>, blockIndex?: number): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof BlockDeviceError) throw error;
    throw new BlockDeviceError("IO", `${what}: ${hostReason(error)}`, blockIndex, { cause: error });
  }
}

/** "no such file or directory (ENOENT)" rather than Node's message, which repeats the call and path. */
function hostReason(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const { errno, code } = error as NodeJS.ErrnoException;
  if (errno === undefined || code === undefined) return error.message;
  return `${getSystemErrorMessage(errno)} (${code})`;
}
