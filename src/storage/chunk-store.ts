/**
 * The chunks a storage server holds, one file each: DIR/<volumeId>/<chunkIndex>.chunk (the format is
 * in chunk-format.ts). Operations on one chunk run through that chunk's FIFO lock in the order they
 * were called: reads share it, everything that changes the chunk holds it alone, so writes (copies
 * included) land strictly in arrival order. Positional writes on the libuv pool could otherwise
 * complete in any order, and an older write to a block could land over a newer one.
 *
 * Durability: `flush(volume)` fdatasyncs every file of the volume written since the last flush. A
 * chunk's creation and deletion sync the directory at once.
 */
import { mkdir, readdir, rm, stat, unlink } from "node:fs/promises";
import { join } from "node:path";
import { type Logger, pino } from "pino";
import { BLOCK_BYTES } from "../block/types.ts";
import { assert } from "../util/assert.ts";
import { ChunkFile } from "./chunk-file.ts";
import {
  CHUNK_METADATA_BYTES,
  CHUNK_TEMP_SUFFIX,
  chunkIndexOfFileName,
  chunkKey,
  chunkPath,
  volumeDir,
} from "./chunk-format.ts";
import { syncDirectory } from "./durable-file.ts";
import { FillTable } from "./fill-state.ts";
import { KeyedRwLock } from "./keyed-lock.ts";
import { OpenFileCache } from "./open-files.ts";
import type { BlockData } from "./protocol.ts";
import { type ChunkRef, StorageError, VOLUME_ID_PATTERN } from "./types.ts";

export const OPEN_FILES_MAX_DEFAULT = 256;

export interface ChunkStoreOptions {
  /** The directory of volume directories (made if missing). */
  readonly dir: string;
  readonly openFilesMax?: number;
  readonly logger?: Logger;
  /**
   * Tests only: copies overwrite blocks client writes have touched, as if there were no fresh
   * bitmap. It exists to show that the copy-versus-mirror race test does provoke the race.
   */
  readonly unsafeIgnoreFreshBlocks?: boolean;
}

/**
 * Runs an operation's work once the chunk's turn has come, so that what it checks (the owner epoch)
 * holds while the work runs. The default admits everything.
 */
export type Admission = <T>(work: () => Promise<T>) => Promise<T>;
const ADMIT: Admission = (work) => work();

interface VolumeState {
  readonly chunks: Map<number, { allocatedBytes: number }>;
  /** Chunks written since the volume's last flush. */
  readonly dirty: Set<string>;
  /** A dirty file closed by the LRU could not be synced: the next flush fails with this. */
  syncFailure: unknown;
}

export class ChunkStore {
  private readonly dir: string;
  private readonly log: Logger;
  private readonly locks = new KeyedRwLock();
  private readonly fills = new FillTable();
  private readonly volumes = new Map<string, VolumeState>();
  private readonly files: OpenFileCache<ChunkFile>;
  private readonly ignoreFresh: boolean;
  private chunkCountNow = 0;
  private usedBytesNow = 0;
  private closed = false;

  private constructor(options: ChunkStoreOptions, log: Logger) {
    this.dir = options.dir;
    this.log = log;
    this.ignoreFresh = options.unsafeIgnoreFreshBlocks ?? false;
    this.files = new OpenFileCache<ChunkFile>({
      openMax: options.openFilesMax ?? OPEN_FILES_MAX_DEFAULT,
      open: (key) => this.openFile(key),
      onSyncError: (key, error) => {
        log.error({ chunk: key, err: error }, "sync before close failed: writes may be lost");
        const volume = this.volumes.get(key.slice(0, key.indexOf("/")));
        if (volume !== undefined) volume.syncFailure ??= error;
      },
      onCloseError: (key, error) => log.warn({ chunk: key, err: error }, "close failed"),
    });
  }

  /** Opens the store: finds every chunk file, and removes files of chunks a crash left half made. */
  static async open(options: ChunkStoreOptions): Promise<ChunkStore> {
    const log = (options.logger ?? pino({ level: "silent" })).child({ component: "chunk-store" });
    const store = new ChunkStore(options, log);
    await mkdir(options.dir, { recursive: true });
    for (const entry of await readdir(options.dir, { withFileTypes: true })) {
      if (entry.isDirectory() && VOLUME_ID_PATTERN.test(entry.name)) await store.scanVolume(entry.name);
      else log.warn({ name: entry.name }, "not a volume directory; ignored");
    }
    log.info({ chunkCount: store.chunkCountNow, usedBytes: store.usedBytesNow }, "chunk store open");
    return store;
  }

  get chunkCount(): number {
    return this.chunkCountNow;
  }

  /** Bytes allocated to chunk files: measured at open, estimated from writes since. */
  get usedBytes(): number {
    return this.usedBytesNow;
  }

  get openFileCount(): number {
    return this.files.openCount;
  }

  has(chunk: ChunkRef): boolean {
    return this.volumes.get(chunk.volumeId)?.chunks.has(chunk.chunkIndex) ?? false;
  }

  /** Makes an empty chunk, durably; nothing if it exists. */
  create(chunk: ChunkRef, admit: Admission = ADMIT): Promise<void> {
    return this.locks.exclusive(chunkKey(chunk), () => admit(() => this.createLocked(chunk)));
  }

  read(
    chunk: ChunkRef,
    blockOffset: number,
    blockCount: number,
    admit: Admission = ADMIT,
  ): Promise<BlockData> {
    const key = chunkKey(chunk);
    return this.locks.shared(key, () =>
      admit(async () => {
        this.mustExist(chunk);
        return this.files.use(key, (file) => file.read(blockOffset, blockCount));
      }),
    );
  }

  /** A client write: `checksums` are the CRCs of `data`'s blocks, checked by the caller. */
  write(
    chunk: ChunkRef,
    blockOffset: number,
    data: Uint8Array,
    checksums: Uint32Array,
    admit: Admission = ADMIT,
  ): Promise<void> {
    const key = chunkKey(chunk);
    return this.locks.exclusive(key, () =>
      admit(async () => {
        this.mustExist(chunk);
        await this.writeLocked(chunk, blockOffset, data, checksums);
        // Only once it has landed: a failed write leaves the block to the copy.
        this.fills.markFresh(key, blockOffset, checksums.length);
      }),
    );
  }

  /**
   * A copy's write while filling `generation`: only the blocks no client write has touched since
   * filling began. Resolves with the number of blocks written.
   */
  writeCopy(
    chunk: ChunkRef,
    generation: number,
    blockOffset: number,
    data: Uint8Array,
    checksums: Uint32Array,
  ): Promise<number> {
    const key = chunkKey(chunk);
    return this.locks.exclusive(key, async () => {
      const runs = this.fills.copyableRuns(key, generation, blockOffset, checksums.length);
      if (this.ignoreFresh) runs.splice(0, runs.length, [blockOffset, checksums.length]);
      assert(this.has(chunk), "a filling chunk exists");
      let written = 0;
      for (const [start, count] of runs) {
        const from = start - blockOffset;
        await this.writeLocked(
          chunk,
          start,
          data.subarray(from * BLOCK_BYTES, (from + count) * BLOCK_BYTES),
          checksums.subarray(from, from + count),
        );
        written += count;
      }
      return written;
    });
  }

  /** Throws STALE_COPY unless the chunk is filling for `generation` (a cheap early refusal). */
  checkFilling(chunk: ChunkRef, generation: number): void {
    this.fills.check(chunkKey(chunk), generation);
  }

  beginFill(chunk: ChunkRef, generation: number): Promise<void> {
    const key = chunkKey(chunk);
    return this.locks.exclusive(key, async () => {
      this.fills.begin(key, generation);
      try {
        await this.createLocked(chunk);
      } catch (error) {
        this.fills.forget(key);
        throw error;
      }
    });
  }

  /** Ends filling and syncs the chunk, so the copy is durable before the coordinator switches to it. */
  endFill(chunk: ChunkRef, generation: number): Promise<void> {
    const key = chunkKey(chunk);
    return this.locks.exclusive(key, async () => {
      if (!this.fills.end(key, generation)) return;
      this.mustExist(chunk);
      await this.files.use(key, (file) => file.sync());
    });
  }

  checksums(chunk: ChunkRef, blockCount: number): Promise<Uint32Array> {
    const key = chunkKey(chunk);
    return this.locks.shared(key, async () => {
      this.mustExist(chunk);
      return this.files.use(key, async (file) => file.checksums(blockCount));
    });
  }

  /** Deletes the chunk (durably); nothing if it does not exist. */
  drop(chunk: ChunkRef): Promise<void> {
    const key = chunkKey(chunk);
    return this.locks.exclusive(key, async () => {
      this.fills.forget(key);
      const volume = this.volumes.get(chunk.volumeId);
      const held = volume?.chunks.get(chunk.chunkIndex);
      if (volume === undefined || held === undefined) return;
      await this.files.discard(key);
      await unlink(chunkPath(this.dir, chunk));
      volume.chunks.delete(chunk.chunkIndex);
      volume.dirty.delete(key);
      this.chunkCountNow--;
      this.usedBytesNow -= held.allocatedBytes;
      await syncDirectory(volumeDir(this.dir, chunk.volumeId));
    });
  }

  /** Makes every write to the volume that completed before this call durable. */
  async flush(volumeId: string): Promise<void> {
    const volume = this.volumes.get(volumeId);
    if (volume === undefined) return;
    const failure = volume.syncFailure;
    volume.syncFailure = undefined;
    if (failure !== undefined) {
      throw new StorageError("IO", `volume ${volumeId}: a sync failed, writes may be lost`, {
        cause: failure,
      });
    }
    // Writes that complete from now on mark their chunk again, for the next flush.
    const keys = [...volume.dirty];
    volume.dirty.clear();
    const results = await Promise.allSettled(keys.map((key) => this.files.syncIfOpen(key)));
    const failed = results.findIndex((r) => r.status === "rejected");
    if (failed >= 0) {
      for (const key of keys) volume.dirty.add(key);
      const result = results[failed];
      throw new StorageError("IO", `volume ${volumeId}: fdatasync failed`, {
        cause: result?.status === "rejected" ? result.reason : undefined,
      });
    }
  }

  /** Syncs and closes every open file. The caller has stopped issuing operations. */
  async close(): Promise<void> {
    this.closed = true;
    await this.files.closeAll();
  }

  private async scanVolume(volumeId: string): Promise<void> {
    const dir = volumeDir(this.dir, volumeId);
    const volume = this.volumeState(volumeId);
    for (const name of await readdir(dir)) {
      if (name.endsWith(CHUNK_TEMP_SUFFIX)) {
        this.log.info({ file: join(dir, name) }, "removing a chunk file a crash left half made");
        await rm(join(dir, name), { force: true });
        continue;
      }
      const chunkIndex = chunkIndexOfFileName(name);
      if (chunkIndex === undefined) {
        this.log.warn({ file: join(dir, name) }, "not a chunk file; ignored");
        continue;
      }
      const stats = await stat(join(dir, name));
      volume.chunks.set(chunkIndex, { allocatedBytes: stats.blocks * 512 });
      this.chunkCountNow++;
      this.usedBytesNow += stats.blocks * 512;
    }
  }

  private volumeState(volumeId: string): VolumeState {
    let volume = this.volumes.get(volumeId);
    if (volume === undefined) {
      volume = { chunks: new Map(), dirty: new Set(), syncFailure: undefined };
      this.volumes.set(volumeId, volume);
    }
    return volume;
  }

  private mustExist(chunk: ChunkRef): void {
    if (!this.has(chunk)) throw new StorageError("NO_CHUNK", `no chunk ${chunkKey(chunk)} on this server`);
  }

  private async createLocked(chunk: ChunkRef): Promise<void> {
    if (this.has(chunk)) return;
    const dir = volumeDir(this.dir, chunk.volumeId);
    const madeDir = (await mkdir(dir, { recursive: true })) !== undefined;
    await ChunkFile.create(chunkPath(this.dir, chunk), chunk);
    if (madeDir) await syncDirectory(this.dir);
    this.volumeState(chunk.volumeId).chunks.set(chunk.chunkIndex, { allocatedBytes: CHUNK_METADATA_BYTES });
    this.chunkCountNow++;
    this.usedBytesNow += CHUNK_METADATA_BYTES;
  }

  private async writeLocked(
    chunk: ChunkRef,
    blockOffset: number,
    data: Uint8Array,
    checksums: Uint32Array,
  ): Promise<void> {
    const key = chunkKey(chunk);
    const volume = this.volumeState(chunk.volumeId);
    const held = volume.chunks.get(chunk.chunkIndex);
    assert(held !== undefined, "a chunk is written only once it exists");
    const allocatedBlocks = await this.files.use(key, (file) => file.write(blockOffset, data, checksums));
    volume.dirty.add(key);
    held.allocatedBytes += allocatedBlocks * BLOCK_BYTES;
    this.usedBytesNow += allocatedBlocks * BLOCK_BYTES;
  }

  private openFile(key: string): Promise<ChunkFile> {
    // A handler still running after the server cut its connections must not open files anew.
    if (this.closed) return Promise.reject(new StorageError("UNAVAILABLE", "the chunk store is closed"));
    const slash = key.indexOf("/");
    const chunk = { volumeId: key.slice(0, slash), chunkIndex: Number(key.slice(slash + 1)) };
    return ChunkFile.open(chunkPath(this.dir, chunk), chunk);
  }
}
