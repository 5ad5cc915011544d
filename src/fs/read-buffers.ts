import { BLOCK_BYTES } from "../block/index.ts";
import { BufferPool } from "../util/buffer-pool.ts";

/** One READ of 1 MiB at an unaligned offset spans 257 blocks; a pooled buffer holds that. */
export const POOLED_READ_BYTES = 1024 * 1024 + BLOCK_BYTES;
/** Reads smaller than this allocate: a fresh small buffer is cheap, a reused 1 MiB one wasteful. */
export const POOLED_READ_BYTES_MIN = 64 * 1024;
/** Enough for every READ in flight on a busy server (32 per connection by default), and a bound. */
const POOLED_READ_BUFFERS_MAX = 64;

/**
 * Large read buffers (see BufferPool). READs of every volume share them, so the bound is the
 * process's; the READ reply gives its buffer back once its bytes are with the kernel.
 */
export const readBuffers = new BufferPool(POOLED_READ_BYTES, POOLED_READ_BUFFERS_MAX);
