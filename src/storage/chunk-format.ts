/**
 * The layout of a chunk file, little-endian:
 *
 *   [0, 4096)        header: magic "FLOTCHNK", format version, chunk index, volume id, CRC-32 of the header
 *   [4096, 20480)    checksum table: CHUNK_BLOCKS_MAX CRC-32s, one per block of data
 *   [20480, ...)     data: block i at DATA_OFFSET + i * 4096
 *
 * A block never written holds the CRC of a zero block in the table, and reads as zeros (a hole, or
 * beyond the end of the file), so a sparse file is a valid chunk of zeros.
 */
import { endianness } from "node:os";
import { join } from "node:path";
import { BLOCK_BYTES } from "../block/types.ts";
import { assert } from "../util/assert.ts";
import { crc32 } from "../util/crc32.ts";
import { TEMP_SUFFIX } from "./durable-file.ts";
import { CHUNK_BLOCKS_MAX, type ChunkRef, StorageError, VOLUME_ID_PATTERN } from "./types.ts";

const MAGIC = new TextEncoder().encode("FLOTCHNK");
export const CHUNK_FORMAT_VERSION = 1;
export const HEADER_BYTES = BLOCK_BYTES;
export const TABLE_OFFSET = HEADER_BYTES;
export const TABLE_BYTES = CHUNK_BLOCKS_MAX * 4;
export const DATA_OFFSET = TABLE_OFFSET + TABLE_BYTES;
/** What a new chunk file holds before any data: the header and the table. */
export const CHUNK_METADATA_BYTES = DATA_OFFSET;
export const ZERO_BLOCK_CRC = crc32(new Uint8Array(BLOCK_BYTES));

const VOLUME_ID_BYTES_MAX = 64;
/** magic, version, chunk index, volume id length, volume id; the CRC follows. */
const HEADER_CRC_AT = 8 + 4 + 4 + 4 + VOLUME_ID_BYTES_MAX;
const CHUNK_FILE_NAME = /^(0|[1-9][0-9]{0,9})\.chunk$/;
export const CHUNK_FILE_SUFFIX = ".chunk";
/** A chunk file being made; a crash leaves it behind, and the store removes it at start. */
export const CHUNK_TEMP_SUFFIX = `${CHUNK_FILE_SUFFIX}${TEMP_SUFFIX}`;

// The table is written straight from a Uint32Array: the host's byte order must be the file's.
assert(endianness() === "LE", "chunk files are little-endian, and so must the host be");
assert(DATA_OFFSET % BLOCK_BYTES === 0, "data starts on a block boundary");

export function chunkKey(chunk: ChunkRef): string {
  return `${chunk.volumeId}/${chunk.chunkIndex}`;
}

export function volumeDir(volumesDir: string, volumeId: string): string {
  assert(VOLUME_ID_PATTERN.test(volumeId), "volume ids are checked before they name a directory");
  return join(volumesDir, volumeId);
}

export function chunkPath(volumesDir: string, chunk: ChunkRef): string {
  return join(volumeDir(volumesDir, chunk.volumeId), `${chunk.chunkIndex}${CHUNK_FILE_SUFFIX}`);
}

/** The chunk index a file name stands for, or undefined if it names no chunk. */
export function chunkIndexOfFileName(name: string): number | undefined {
  const match = CHUNK_FILE_NAME.exec(name);
  if (match === null) return undefined;
  const index = Number(match[1]);
  return index <= 0xffffffff ? index : undefined;
}

export function encodeHeader(chunk: ChunkRef): Uint8Array {
  const header = new Uint8Array(HEADER_BYTES);
  const view = new DataView(header.buffer);
  const id = new TextEncoder().encode(chunk.volumeId);
  assert(id.length <= VOLUME_ID_BYTES_MAX, "volume id fits the header");
  header.set(MAGIC, 0);
  view.setUint32(8, CHUNK_FORMAT_VERSION, true);
  view.setUint32(12, chunk.chunkIndex, true);
  view.setUint32(16, id.length, true);
  header.set(id, 20);
  view.setUint32(HEADER_CRC_AT, crc32(header.subarray(0, HEADER_CRC_AT)), true);
  return header;
}

/** Checks that `header` is a chunk header of this format naming `chunk`; throws IO naming the fault. */
export function checkHeader(header: Uint8Array, chunk: ChunkRef, path: string): void {
  const fail = (what: string) => new StorageError("IO", `chunk file ${path}: ${what}`);
  if (header.length < HEADER_BYTES) throw fail(`header cut short at ${header.length} bytes`);
  const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
  if (!MAGIC.every((byte, i) => header[i] === byte)) throw fail("not a chunk file (bad magic)");
  if (view.getUint32(HEADER_CRC_AT, true) !== crc32(header.subarray(0, HEADER_CRC_AT))) {
    throw fail("header fails its checksum");
  }
  const version = view.getUint32(8, true);
  if (version !== CHUNK_FORMAT_VERSION)
    throw fail(`format version ${version}, expected ${CHUNK_FORMAT_VERSION}`);
  const idLength = Math.min(view.getUint32(16, true), VOLUME_ID_BYTES_MAX);
  const volumeId = new TextDecoder().decode(header.subarray(20, 20 + idLength));
  const chunkIndex = view.getUint32(12, true);
  if (volumeId !== chunk.volumeId || chunkIndex !== chunk.chunkIndex) {
    throw fail(`holds chunk ${volumeId}/${chunkIndex}, not ${chunkKey(chunk)}`);
  }
}

/** A fresh checksum table: every block is a zero block. */
export function zeroTable(): Uint32Array {
  return new Uint32Array(CHUNK_BLOCKS_MAX).fill(ZERO_BLOCK_CRC);
}

/** The CRC-32 of each block of `data` (whole blocks). */
export function blockChecksums(data: Uint8Array): Uint32Array {
  assert(data.length % BLOCK_BYTES === 0, "whole blocks");
  const checksums = new Uint32Array(data.length / BLOCK_BYTES);
  for (let i = 0; i < checksums.length; i++) {
    checksums[i] = crc32(data.subarray(i * BLOCK_BYTES, (i + 1) * BLOCK_BYTES));
  }
  return checksums;
}

/** The index of the first block of `data` whose CRC differs from `checksums`, or -1. */
export function firstBadBlock(data: Uint8Array, checksums: Uint32Array): number {
  assert(data.length === checksums.length * BLOCK_BYTES, "one checksum per block");
  for (let i = 0; i < checksums.length; i++) {
    if (crc32(data.subarray(i * BLOCK_BYTES, (i + 1) * BLOCK_BYTES)) !== checksums[i]) return i;
  }
  return -1;
}
