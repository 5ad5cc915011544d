/**
 * Which chunks are filling (the target of a move), for which copy generation, and which of their
 * blocks client writes have touched since filling began. In memory only: after a restart nothing
 * is filling, copies get STALE_COPY, and the coordinator starts the chunk's copy over.
 *
 * The copy-versus-mirror race: the copier reads block B from the source, a client then writes B to
 * both replicas, and the copier's older B would land on the target after the client's. Client writes
 * mark their blocks fresh, and a copy writes only blocks that are not fresh; both happen inside the
 * chunk's write queue, so a copy either lands before the client's write (which then overwrites it)
 * or sees the block fresh and skips it.
 */
import { assert } from "../util/assert.ts";
import { CHUNK_BLOCKS_MAX, StorageError } from "./types.ts";

/** Chunks filling at once on one server (a bitmap each: 512 bytes). */
export const FILLING_CHUNKS_MAX = 16_384;
/** Ended fills remembered, so that endFill is idempotent for the generation that ended. */
export const ENDED_FILLS_MAX = 16_384;

interface Filling {
  readonly generation: number;
  /** One bit per block of the chunk: set once a client write has touched it. */
  readonly fresh: Uint8Array;
}

export class FillTable {
  private readonly filling = new Map<string, Filling>();
  /** key → generation that ended, in insertion order (the oldest is forgotten first). */
  private readonly ended = new Map<string, number>();

  get fillingCount(): number {
    return this.filling.size;
  }

  isFilling(key: string): boolean {
    return this.filling.has(key);
  }

  /**
   * Starts filling for `generation`. The same generation again changes nothing (a retried call must
   * not forget fresh blocks while a copy of that generation may still be in flight); a higher one
   * starts afresh; a lower one is STALE_COPY.
   */
  begin(key: string, generation: number): void {
    const current = this.filling.get(key);
    if (current !== undefined && generation < current.generation) {
      throw staleCopy(key, generation, `generation ${current.generation} is filling`);
    }
    if (current?.generation === generation) return;
    if (current === undefined && this.filling.size >= FILLING_CHUNKS_MAX) {
      throw new StorageError("INVALID", `${FILLING_CHUNKS_MAX} chunks are filling already on this server`);
    }
    this.ended.delete(key);
    this.filling.set(key, { generation, fresh: new Uint8Array(CHUNK_BLOCKS_MAX / 8) });
  }

  /** Ends filling; true if it ended now, false if this generation had ended already. */
  end(key: string, generation: number): boolean {
    const current = this.filling.get(key);
    if (current === undefined) {
      if (this.ended.get(key) === generation) return false;
      throw staleCopy(key, generation, "the chunk is not filling");
    }
    if (current.generation !== generation) {
      throw staleCopy(key, generation, `generation ${current.generation} is filling`);
    }
    this.filling.delete(key);
    this.ended.set(key, generation);
    if (this.ended.size > ENDED_FILLS_MAX) {
      const oldest = this.ended.keys().next().value;
      if (oldest !== undefined) this.ended.delete(oldest);
    }
    return true;
  }

  /** Throws STALE_COPY unless `generation` is filling. */
  check(key: string, generation: number): void {
    const current = this.filling.get(key);
    if (current === undefined) throw staleCopy(key, generation, "the chunk is not filling");
    if (current.generation !== generation) {
      throw staleCopy(key, generation, `generation ${current.generation} is filling`);
    }
  }

  /** Records a client write (nothing to do unless the chunk is filling). */
  markFresh(key: string, blockOffset: number, blockCount: number): void {
    const current = this.filling.get(key);
    if (current === undefined) return;
    assert(blockOffset + blockCount <= CHUNK_BLOCKS_MAX, "fresh blocks lie within the chunk");
    for (let block = blockOffset; block < blockOffset + blockCount; block++) {
      current.fresh[block >> 3] = (current.fresh[block >> 3] ?? 0) | (1 << (block & 7));
    }
  }

  /**
   * The runs of [blockOffset, blockOffset + blockCount) that no client write has touched, as
   * [offset, count] pairs: what a copy of `generation` may write. STALE_COPY unless it is filling.
   */
  copyableRuns(key: string, generation: number, blockOffset: number, blockCount: number): [number, number][] {
    this.check(key, generation);
    const fresh = this.filling.get(key)?.fresh;
    assert(fresh !== undefined, "a checked fill has a bitmap");
    const runs: [number, number][] = [];
    let runStart = -1;
    for (let block = blockOffset; block <= blockOffset + blockCount; block++) {
      const copyable =
        block < blockOffset + blockCount && ((fresh[block >> 3] ?? 0) & (1 << (block & 7))) === 0;
      if (copyable && runStart < 0) runStart = block;
      if (!copyable && runStart >= 0) {
        runs.push([runStart, block - runStart]);
        runStart = -1;
      }
    }
    return runs;
  }

  forget(key: string): void {
    this.filling.delete(key);
    this.ended.delete(key);
  }
}

function staleCopy(key: string, generation: number, why: string): StorageError {
  return new StorageError("STALE_COPY", `chunk ${key}: copy generation ${generation} is stale (${why})`);
}
