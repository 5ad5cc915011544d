import assert from "node:assert/strict";
import { BLOCK_BYTES } from "../block/index.ts";

/** One READ of 1 MiB at an unaligned offset spans 257 blocks; a pooled buffer holds that. */
export const POOLED_READ_BYTES = 1024 * 1024 + BLOCK_BYTES;
/** Reads smaller than this allocate: a fresh small buffer is cheap, a reused 1 MiB one wasteful. */
export const POOLED_READ_BYTES_MIN = 64 * 1024;
/** Enough for every READ in flight on a busy server (32 per connection by default), and a bound. */
const POOLED_BUFFERS_MAX = 64;

/**
 * Large read buffers, reused once the caller says it is done with one. A fresh 1 MiB buffer per
 * READ costs a zeroed allocation and garbage collection of as much again; profiles showed that as a
 * large share of a sequential read. A buffer nobody gives back is simply collected.
 */
export class ReadBufferPool {
  readonly #free: Uint8Array[] = [];
  /** The free buffers again, to assert that none is given back twice (free and in use at once). */
  readonly #isFree = new WeakSet<ArrayBuffer>();
  readonly #countMax: number;

  constructor(countMax = POOLED_BUFFERS_MAX) {
    this.#countMax = countMax;
  }

  get freeCount(): number {
    return this.#free.length;
  }

  /** A buffer of POOLED_READ_BYTES, with whatever bytes its last user left in it. */
  take(): Uint8Array {
    const buffer = this.#free.pop();
    if (buffer === undefined) return new Uint8Array(POOLED_READ_BYTES);
    this.#isFree.delete(buffer.buffer as ArrayBuffer);
    return buffer;
  }

  /** Gives back a buffer from `take`; nothing may use it (or a view of it) afterwards. */
  give(buffer: Uint8Array): void {
    assert(buffer.byteLength === POOLED_READ_BYTES && buffer.byteOffset === 0, "a pooled buffer is whole");
    const backing = buffer.buffer as ArrayBuffer;
    assert(!this.#isFree.has(backing), "a read buffer is given back once");
    if (this.#free.length >= this.#countMax) return;
    this.#isFree.add(backing);
    this.#free.push(buffer);
  }
}

/** The process's pool: READs of every volume share it, so its bound is the process's. */
export const readBuffers = new ReadBufferPool();
