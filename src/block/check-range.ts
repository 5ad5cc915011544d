import { BLOCK_BYTES, BLOCK_RUN_COUNT_MAX, BlockDeviceError } from "./types.ts";

/** Validates a read request against a device of `deviceBlockCount` blocks. */
export function checkReadRange(deviceBlockCount: number, blockIndex: number, blockCount: number): void {
  if (!Number.isSafeInteger(blockIndex) || !Number.isSafeInteger(blockCount) || blockCount < 1) {
    throw new BlockDeviceError("RANGE", `bad block run ${blockIndex}+${blockCount}`, blockIndex);
  }
  if (blockCount > BLOCK_RUN_COUNT_MAX) {
    throw new BlockDeviceError(
      "RANGE",
      `run of ${blockCount} blocks exceeds ${BLOCK_RUN_COUNT_MAX}`,
      blockIndex,
    );
  }
  if (blockIndex < 0 || blockIndex + blockCount > deviceBlockCount) {
    throw new BlockDeviceError(
      "RANGE",
      `blocks ${blockIndex}..${blockIndex + blockCount - 1} outside device of ${deviceBlockCount}`,
      blockIndex,
    );
  }
}

/** Validates a write request; returns the number of blocks it covers. */
export function checkWriteRange(deviceBlockCount: number, blockIndex: number, data: Uint8Array): number {
  if (data.length === 0 || data.length % BLOCK_BYTES !== 0) {
    throw new BlockDeviceError("RANGE", `write of ${data.length} bytes is not whole blocks`, blockIndex);
  }
  const blockCount = data.length / BLOCK_BYTES;
  checkReadRange(deviceBlockCount, blockIndex, blockCount);
  return blockCount;
}
