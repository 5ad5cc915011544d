/**
 * One open chunk file: positional reads verified against its checksum table (kept in memory while
 * open), writes of data then table, and fdatasync when written since the last one. The caller
 * orders operations (ChunkStore holds a lock per chunk); this class does no locking of its own.
 */
import { type FileHandle, open } from "node:fs/promises";
import { BLOCK_BYTES } from "../block/types.ts";
import { assert } from "../util/assert.ts";
import {
  checkHeader,
  chunkKey,
  DATA_OFFSET,
  encodeHeader,
  firstBadBlock,
  HEADER_BYTES,
  TABLE_BYTES,
  TABLE_OFFSET,
  ZERO_BLOCK_CRC,
  zeroTable,
} from "./chunk-format.ts";
import { replaceFile, writeFully } from "./durable-file.ts";
import type { BlockData } from "./protocol.ts";
import { CHUNK_BLOCKS_MAX, type ChunkRef, StorageError } from "./types.ts";

export class ChunkFile {
  readonly chunk: ChunkRef;
  readonly path: string;
  private readonly handle: FileHandle;
  private readonly table: Uint32Array;
  /** Writes completed, and how many of them the last completed fdatasync covered. */
  private writeCount = 0;
  private syncedCount = 0;

  private constructor(chunk: ChunkRef, path: string, handle: FileHandle, table: Uint32Array) {
    this.chunk = chunk;
    this.path = path;
    this.handle = handle;
    this.table = table;
  }

  /** Makes the file of an empty chunk at `path`, atomically and durably (directory included). */
  static async create(path: string, chunk: ChunkRef): Promise<void> {
    await replaceFile(path, [
      { bytes: encodeHeader(chunk), position: 0 },
      { bytes: tableBytes(zeroTable()), position: TABLE_OFFSET },
    ]);
  }

  static async open(path: string, chunk: ChunkRef): Promise<ChunkFile> {
    const handle = await open(path, "r+");
    try {
      const metadata = new Uint8Array(HEADER_BYTES + TABLE_BYTES);
      const { bytesRead } = await handle.read(metadata, 0, metadata.length, 0);
      if (bytesRead < metadata.length) {
        throw new StorageError(
          "IO",
          `chunk file ${path}: ${bytesRead} bytes, shorter than its header and table`,
        );
      }
      checkHeader(metadata.subarray(0, HEADER_BYTES), chunk, path);
      const table = new Uint32Array(CHUNK_BLOCKS_MAX);
      tableBytes(table).set(metadata.subarray(TABLE_OFFSET, TABLE_OFFSET + TABLE_BYTES));
      return new ChunkFile(chunk, path, handle, table);
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  /** Written since the last completed sync. */
  get dirty(): boolean {
    return this.writeCount > this.syncedCount;
  }

  /** A copy of the table's first `blockCount` entries. */
  checksums(blockCount: number): Uint32Array {
    assert(blockCount >= 0 && blockCount <= CHUNK_BLOCKS_MAX, "checksum count within a chunk");
    return this.table.slice(0, blockCount);
  }

  /** Reads blocks and checks each against the table; CHECKSUM names the first bad block. */
  async read(blockOffset: number, blockCount: number): Promise<BlockData> {
    this.checkRange(blockOffset, blockCount);
    // Zeroed: a hole or a read past the end of the file is a block of zeros, which its table entry says.
    const data = new Uint8Array(blockCount * BLOCK_BYTES);
    await readFully(this.handle, data, DATA_OFFSET + blockOffset * BLOCK_BYTES);
    const checksums = this.table.slice(blockOffset, blockOffset + blockCount);
    const bad = firstBadBlock(data, checksums);
    if (bad >= 0) {
      const blockIndex = blockOffset + bad;
      throw new StorageError(
        "CHECKSUM",
        `chunk ${chunkKey(this.chunk)}: block ${blockIndex} fails its checksum`,
        {
          blockIndex,
        },
      );
    }
    return { data, checksums };
  }

  /**
   * Writes whole blocks whose CRCs the caller has computed or checked. Returns how many blocks held
   * zeros before and do not now (an estimate of the space the write allocated).
   *
   * Crash window: data first, then the table. A crash between the two leaves these blocks' old
   * checksums over new data, so they fail CHECKSUM when read. Such a write was never acknowledged
   * (nor flushed); the client rewrites it or reads another replica. The other order would have the
   * same window the other way round, so nothing is gained by swapping them.
   */
  async write(blockOffset: number, data: Uint8Array, checksums: Uint32Array): Promise<number> {
    const blockCount = checksums.length;
    this.checkRange(blockOffset, blockCount);
    assert(data.length === blockCount * BLOCK_BYTES, "one checksum per block written");
    await writeFully(this.handle, data, DATA_OFFSET + blockOffset * BLOCK_BYTES);
    await writeFully(this.handle, tableBytes(checksums), TABLE_OFFSET + blockOffset * 4);
    let allocated = 0;
    for (let i = 0; i < blockCount; i++) {
      if (this.table[blockOffset + i] === ZERO_BLOCK_CRC && checksums[i] !== ZERO_BLOCK_CRC) allocated++;
    }
    this.table.set(checksums, blockOffset);
    // Counted once it is done: a sync that began while it was under way may not cover it.
    this.writeCount++;
    return allocated;
  }

  /** fdatasync, if anything was written since the last one. */
  async sync(): Promise<void> {
    if (!this.dirty) return;
    const covered = this.writeCount;
    await this.handle.datasync();
    this.syncedCount = Math.max(this.syncedCount, covered);
  }

  async close(): Promise<void> {
    await this.handle.close();
  }

  private checkRange(blockOffset: number, blockCount: number): void {
    assert(Number.isInteger(blockOffset) && blockOffset >= 0, "block offset is a whole number");
    assert(blockCount >= 1 && blockOffset + blockCount <= CHUNK_BLOCKS_MAX, "blocks lie within the chunk");
  }
}

function tableBytes(table: Uint32Array): Uint8Array {
  return new Uint8Array(table.buffer, table.byteOffset, table.byteLength);
}

/** Reads until `into` is full or the file ends (the rest stays as it was: zeros). */
async function readFully(handle: FileHandle, into: Uint8Array, position: number): Promise<void> {
  for (let done = 0; done < into.length; ) {
    const { bytesRead } = await handle.read(into, done, into.length - done, position + done);
    if (bytesRead === 0) return;
    done += bytesRead;
  }
}
