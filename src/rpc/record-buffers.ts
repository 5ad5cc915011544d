import { BufferPool } from "../util/buffer-pool.ts";
import { RPC_RECORD_BYTES_MAX } from "./types.ts";

/** Records this large are reassembled into a pooled buffer (a 1 MiB WRITE); smaller ones allocate. */
export const POOLED_RECORD_BYTES_MIN = 64 * 1024;
/** Enough for every large call in flight on a busy server (32 per connection by default), and a bound. */
const POOLED_RECORDS_MAX = 64;

/**
 * Buffers for reassembled call records (see BufferPool), shared by every server in the process. A
 * record goes back only when its handler said, by `RpcCall.releaseArgs`, that nothing it keeps
 * refers to the call's argument bytes; otherwise it is left to the collector.
 */
export const recordBuffers = new BufferPool(RPC_RECORD_BYTES_MAX, POOLED_RECORDS_MAX);
