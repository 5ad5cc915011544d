export { checkReadRange, checkWriteRange } from "./check-range.ts";
export type { BlockDevice, BlockDeviceErrorCode } from "./types.ts";
export { BLOCK_BYTES, BLOCK_RUN_COUNT_MAX, BlockDeviceError } from "./types.ts";
