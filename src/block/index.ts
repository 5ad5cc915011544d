export { checkReadRange, checkWriteRange } from "./check-range.ts";
export { FaultyBlockDevice } from "./faulty-device.ts";
export { FileBlockDevice } from "./file-device.ts";
export { MemoryBlockDevice } from "./memory-device.ts";
export type { BlockDevice, BlockDeviceErrorCode } from "./types.ts";
export { BLOCK_BYTES, BLOCK_RUN_COUNT_MAX, BlockDeviceError } from "./types.ts";
