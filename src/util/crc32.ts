import { crc32 as nativeCrc32 } from "@node-rs/crc32";

/**
 * CRC-32 (IEEE 802.3, the polynomial and values of zlib's crc32), unsigned. Every data block is
 * checked with it on the way in and out, and zlib's own took a fifth of a sequential write's CPU;
 * this SIMD implementation is about twice as fast on 4 KiB blocks. Same values as zlib, so volumes
 * and chunk files written with either read back with the other (test/unit/util/crc32.test.ts).
 * `initial` continues a CRC over bytes that come after those it covered.
 */
export function crc32(data: Uint8Array | string, initial = 0): number {
  return nativeCrc32(data, initial) >>> 0;
}
