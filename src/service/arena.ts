/**
 * The service-state arena: what a vserver's file service holds in memory, kept in fixed-size pages
 * so that it can be moved to another node as pages rather than rebuilt there. Records in pages refer
 * to each other by (page, offset), never by JS references; a node's page numbers are its own, so a
 * page image arriving from another node is re-based (its pages get local numbers, every reference
 * inside is rewritten) and checked before use.
 *
 * Page layout (little-endian):
 *   0 magic u32 | 4 format u16 | 6 reserved u16 | 8 tag u32 (the vserver's handle id) | 12 page u32
 *   16 used u32 (bytes from 0 that hold header and records) | 20 live u32 (bytes of live records)
 *   24 checksum u32 (CRC-32 of bytes [0, used) with this field zero; set when sealed) | 28 reserved
 * Record layout, 8-byte aligned, from PAGE_HEADER_BYTES up to `used`:
 *   0 payload bytes u32 | 4 kind u8 | 5 state u8 (1 live, 2 freed) | 6 refs u16 | 8 seq (hi u32, lo u32)
 *   then the payload, whose first `refs` × 8 bytes are references: page u32, offset u32.
 */

import { assert, assertionFailed } from "../util/assert.ts";
import { crc32 } from "../util/crc32.ts";

export const ARENA_PAGE_BYTES = 64 * 1024;
export const PAGE_HEADER_BYTES = 32;
export const RECORD_HEADER_BYTES = 16;
export const REF_BYTES = 8;
/** The largest payload one record can hold (records never span pages). */
export const RECORD_PAYLOAD_BYTES_MAX = ARENA_PAGE_BYTES - PAGE_HEADER_BYTES - RECORD_HEADER_BYTES;
const PAGE_MAGIC = 0x4153_4c46; // "FLSA"
const PAGE_FORMAT = 1;
const STATE_LIVE = 1;
const STATE_FREED = 2;
const SEQ_HI = 0x1_0000_0000;

/** A record's place: a page number of this node's pool and the record's offset in that page. */
export interface ArenaRef {
  readonly page: number;
  readonly offset: number;
}

/** A page image whose bytes are not a valid arena page (checksum, magic, tag, layout). */
export class ArenaCorruption extends Error {
  override name = "ArenaCorruption";
}

/** The arena cannot take another page: its own bound or the node's pool is reached. */
export class ArenaFull extends Error {
  override name = "ArenaFull";
}

const align8 = (n: number): number => (n + 7) & ~7;

/**
 * A node's pages for every vserver's arena: bounded, numbered from 1 (0 is no page), numbers reused
 * once freed. Memory is the pool's bound times the page size at most.
 */
export class PagePool {
  readonly pagesMax: number;
  private readonly free: number[] = [];
  private readonly spare: Uint8Array[] = [];
  private next = 1;
  private inUse = 0;

  constructor(pagesMax: number) {
    assert(Number.isInteger(pagesMax) && pagesMax >= 1, "a page pool holds at least one page");
    this.pagesMax = pagesMax;
  }

  get pagesUsed(): number {
    return this.inUse;
  }

  get pagesFree(): number {
    return this.pagesMax - this.inUse;
  }

  /** A zeroed page and its number, or undefined when the pool is at its bound. */
  take(): { page: number; bytes: Uint8Array } | undefined {
    if (this.inUse >= this.pagesMax) return undefined;
    const page = this.free.pop() ?? this.next++;
    const reused = this.spare.pop();
    const bytes = reused ?? new Uint8Array(ARENA_PAGE_BYTES);
    if (reused !== undefined) bytes.fill(0);
    this.inUse++;
    return { page, bytes };
  }

  give(page: number, bytes: Uint8Array): void {
    assert(this.inUse > 0 && page >= 1 && page < this.next, `page ${page} was not taken from this pool`);
    this.inUse--;
    this.free.push(page);
    // A few spare buffers save allocations when pages come and go; the rest go to the collector.
    if (this.spare.length < 64) this.spare.push(bytes);
  }
}

interface PageState {
  readonly bytes: Uint8Array;
  readonly view: DataView;
  used: number;
  live: number;
  dirty: boolean;
}

/** A live record as read back: its kind, its references and its payload after them. */
export interface ArenaRecord {
  readonly ref: ArenaRef;
  readonly kind: number;
  readonly seq: number;
  readonly refs: readonly ArenaRef[];
  /** A view into the page: valid until the record is freed or the arena compacted. */
  readonly body: Uint8Array;
}

/** What travels with the pages: the arena's tag, its sequence counter and its exact page set. */
export interface ArenaManifest {
  readonly tag: number;
  readonly nextSeq: number;
  readonly pages: readonly number[];
}

export interface ArenaStats {
  readonly pages: number;
  readonly pagesMax: number;
  /** Bytes of pages held (what the arena costs the node). */
  readonly bytes: number;
  /** Bytes of live records in them. */
  readonly liveBytes: number;
}

/** One vserver's arena: records allocated in pages taken from the node's pool. */
export class ServiceArena {
  readonly tag: number;
  readonly pagesMax: number;
  private readonly pool: PagePool;
  private readonly pages = new Map<number, PageState>();
  private current: number | undefined;
  private nextSeq = 1;
  private disposed = false;

  constructor(pool: PagePool, tag: number, pagesMax: number) {
    assert(Number.isInteger(tag) && tag >= 0 && tag < SEQ_HI, "an arena's tag is a 32-bit id");
    assert(Number.isInteger(pagesMax) && pagesMax >= 1, "an arena holds at least one page");
    this.pool = pool;
    this.tag = tag;
    this.pagesMax = pagesMax;
  }

  stats(): ArenaStats {
    let liveBytes = 0;
    for (const state of this.pages.values()) liveBytes += state.live;
    return {
      pages: this.pages.size,
      pagesMax: this.pagesMax,
      bytes: this.pages.size * ARENA_PAGE_BYTES,
      liveBytes,
    };
  }

  /**
   * A new live record of `kind` with `refs` and room for `bodyBytes` after them; the body is zero and
   * the caller fills it through `body()`. Throws ArenaFull when no page can be had.
   */
  alloc(kind: number, refs: readonly ArenaRef[], bodyBytes: number): ArenaRef {
    assert(!this.disposed, "an arena is not used after it is disposed");
    assert(Number.isInteger(kind) && kind >= 1 && kind <= 255, "a record kind is 1..255");
    const payload = refs.length * REF_BYTES + bodyBytes;
    if (!(Number.isInteger(bodyBytes) && bodyBytes >= 0 && payload <= RECORD_PAYLOAD_BYTES_MAX))
      assertionFailed(`a record holds at most ${RECORD_PAYLOAD_BYTES_MAX} bytes, not ${payload}`);
    const size = align8(RECORD_HEADER_BYTES + payload);
    let page = this.current;
    let state = page === undefined ? undefined : this.pages.get(page);
    if (page === undefined || state === undefined || state.used + size > ARENA_PAGE_BYTES) {
      page = this.newPage();
      this.current = page;
      state = this.pages.get(page)!;
    }
    const offset = state.used;
    const seq = this.nextSeq++;
    const v = state.view;
    v.setUint32(offset, payload, true);
    v.setUint8(offset + 4, kind);
    v.setUint8(offset + 5, STATE_LIVE);
    v.setUint16(offset + 6, refs.length, true);
    v.setUint32(offset + 8, Math.floor(seq / SEQ_HI), true);
    v.setUint32(offset + 12, seq % SEQ_HI, true);
    for (const [i, target] of refs.entries()) {
      this.stateOf(target); // a reference names a page of this arena
      v.setUint32(offset + RECORD_HEADER_BYTES + i * REF_BYTES, target.page, true);
      v.setUint32(offset + RECORD_HEADER_BYTES + i * REF_BYTES + 4, target.offset, true);
    }
    state.used = offset + size;
    state.live += size;
    state.dirty = true;
    this.writeCounts(page, state);
    return { page, offset };
  }

  /** The record's body (after its references), writable; call `touch` after writing into it. */
  body(ref: ArenaRef): Uint8Array {
    const state = this.liveState(ref);
    const payload = state.view.getUint32(ref.offset, true);
    const refs = state.view.getUint16(ref.offset + 6, true);
    const start = ref.offset + RECORD_HEADER_BYTES + refs * REF_BYTES;
    return state.bytes.subarray(start, ref.offset + RECORD_HEADER_BYTES + payload);
  }

  /** A DataView over the record's body, for fixed-layout records. */
  bodyView(ref: ArenaRef): DataView {
    const body = this.body(ref);
    return new DataView(body.buffer, body.byteOffset, body.byteLength);
  }

  /** Marks the record's page changed since the last copy (after writing its body in place). */
  touch(ref: ArenaRef): void {
    this.liveState(ref).dirty = true;
  }

  kindOf(ref: ArenaRef): number {
    return this.liveState(ref).view.getUint8(ref.offset + 4);
  }

  refsOf(ref: ArenaRef): ArenaRef[] {
    const state = this.liveState(ref);
    const count = state.view.getUint16(ref.offset + 6, true);
    const refs: ArenaRef[] = [];
    for (let i = 0; i < count; i++) {
      const at = ref.offset + RECORD_HEADER_BYTES + i * REF_BYTES;
      refs.push({ page: state.view.getUint32(at, true), offset: state.view.getUint32(at + 4, true) });
    }
    return refs;
  }

  /** Frees a live record; a page left without live records goes back to the pool. */
  free(ref: ArenaRef): void {
    const state = this.liveState(ref);
    const size = align8(RECORD_HEADER_BYTES + state.view.getUint32(ref.offset, true));
    state.view.setUint8(ref.offset + 5, STATE_FREED);
    state.live -= size;
    assert(state.live >= PAGE_HEADER_BYTES, "a page's live bytes never fall below its header");
    state.dirty = true;
    this.writeCounts(ref.page, state);
    if (state.live === PAGE_HEADER_BYTES && ref.page !== this.current) this.dropPage(ref.page);
  }

  /** Every live record, oldest first (by allocation sequence). */
  records(): ArenaRecord[] {
    const out: ArenaRecord[] = [];
    for (const [page, state] of this.pages) {
      for (let offset = PAGE_HEADER_BYTES; offset < state.used; ) {
        const v = state.view;
        const payload = v.getUint32(offset, true);
        if (v.getUint8(offset + 5) === STATE_LIVE) {
          const ref = { page, offset };
          const refCount = v.getUint16(offset + 6, true);
          const bodyStart = offset + RECORD_HEADER_BYTES + refCount * REF_BYTES;
          out.push({
            ref,
            kind: v.getUint8(offset + 4),
            seq: v.getUint32(offset + 8, true) * SEQ_HI + v.getUint32(offset + 12, true),
            refs: this.refsOf(ref),
            body: state.bytes.subarray(bodyStart, offset + RECORD_HEADER_BYTES + payload),
          });
        }
        offset += align8(RECORD_HEADER_BYTES + payload);
      }
    }
    return out.sort((a, b) => a.seq - b.seq);
  }

  /**
   * Packs the live records of pages at most half live into fresh pages (oldest first, so order by
   * sequence is kept) and rewrites every reference to a moved record. Returns the moves, old place to
   * new, keyed by `refKey`; holders of refs re-read them through it.
   */
  compact(): Map<string, ArenaRef> {
    const sparse = [...this.pages.entries()]
      .filter(([page, s]) => page !== this.current && s.live * 2 <= s.used)
      .map(([page]) => page);
    const moves = new Map<string, ArenaRef>();
    if (sparse.length === 0) return moves;
    const sparseSet = new Set(sparse);
    const moving = this.records().filter((r) => sparseSet.has(r.ref.page));
    this.current = undefined; // the packed records start a fresh page
    for (const record of moving) {
      const seq = record.seq;
      const to = this.alloc(record.kind, record.refs, record.body.length);
      this.body(to).set(record.body);
      const state = this.pages.get(to.page)!;
      state.view.setUint32(to.offset + 8, Math.floor(seq / SEQ_HI), true);
      state.view.setUint32(to.offset + 12, seq % SEQ_HI, true);
      this.nextSeq--; // the copy keeps its original sequence number
      moves.set(refKey(record.ref), to);
    }
    for (const page of sparse) this.dropPage(page);
    this.rewriteRefs((target) => moves.get(refKey(target)) ?? target);
    return moves;
  }

  /** Pages changed since the last call, which also forgets them (the next copy round starts here). */
  takeDirty(): number[] {
    const dirty: number[] = [];
    for (const [page, state] of this.pages) {
      if (!state.dirty) continue;
      state.dirty = false;
      dirty.push(page);
    }
    return dirty;
  }

  /** Whether any page changed since the last `takeDirty`. */
  get dirtyPages(): number {
    let n = 0;
    for (const state of this.pages.values()) if (state.dirty) n++;
    return n;
  }

  /** A copy of a page's used bytes with its checksum set, as it travels; undefined if the page is gone. */
  seal(page: number): Uint8Array | undefined {
    const state = this.pages.get(page);
    if (state === undefined) return undefined;
    const image = state.bytes.slice(0, state.used);
    const view = new DataView(image.buffer);
    view.setUint32(24, 0, true);
    view.setUint32(24, crc32(image), true);
    return image;
  }

  manifest(): ArenaManifest {
    return { tag: this.tag, nextSeq: this.nextSeq, pages: [...this.pages.keys()] };
  }

  /**
   * Checks the arena's invariants: page headers, records tiling each page exactly, live counts, and
   * every reference naming the start of a live record of this arena. Throws ArenaCorruption.
   */
  check(): void {
    const starts = new Set<string>();
    for (const [page, state] of this.pages) {
      const v = state.view;
      if (v.getUint32(0, true) !== PAGE_MAGIC || v.getUint16(4, true) !== PAGE_FORMAT)
        throw new ArenaCorruption(`page ${page}: not an arena page`);
      if (v.getUint32(8, true) !== this.tag || v.getUint32(12, true) !== page)
        throw new ArenaCorruption(
          `page ${page}: header names tag ${v.getUint32(8, true)} page ${v.getUint32(12, true)}`,
        );
      let live = PAGE_HEADER_BYTES;
      let offset = PAGE_HEADER_BYTES;
      while (offset < state.used) {
        const payload = v.getUint32(offset, true);
        const size = align8(RECORD_HEADER_BYTES + payload);
        const s = v.getUint8(offset + 5);
        if (
          payload > RECORD_PAYLOAD_BYTES_MAX ||
          offset + size > state.used ||
          (s !== STATE_LIVE && s !== STATE_FREED)
        )
          throw new ArenaCorruption(`page ${page}: a malformed record at offset ${offset}`);
        if (s === STATE_LIVE) {
          live += size;
          starts.add(refKey({ page, offset }));
        }
        offset += size;
      }
      if (
        offset !== state.used ||
        live !== state.live ||
        v.getUint32(16, true) !== state.used ||
        v.getUint32(20, true) !== live
      )
        throw new ArenaCorruption(
          `page ${page}: used ${state.used}, live ${state.live}, records end at ${offset}, live ${live}`,
        );
    }
    for (const record of this.records()) {
      if (record.seq >= this.nextSeq)
        throw new ArenaCorruption(`a record's sequence ${record.seq} is not yet given`);
      for (const target of record.refs)
        if (!starts.has(refKey(target)))
          throw new ArenaCorruption(
            `record at ${refKey(record.ref)} refers to ${refKey(target)}, not a live record`,
          );
    }
  }

  /**
   * Builds an arena from page images that came from another node: each is checked (checksum, magic,
   * tag, page number), given a page of this node, and every reference is re-based to the new numbers;
   * then the whole arena is checked. On any failure its pages go back to the pool and it throws.
   */
  static fromImages(
    pool: PagePool,
    manifest: ArenaManifest,
    images: ReadonlyMap<number, Uint8Array>,
    pagesMax: number,
  ): ServiceArena {
    const arena = new ServiceArena(pool, manifest.tag, pagesMax);
    try {
      if (manifest.pages.length > pagesMax)
        throw new ArenaFull(`${manifest.pages.length} pages arrived; this vserver may hold ${pagesMax}`);
      const local = new Map<number, number>();
      for (const source of manifest.pages) {
        const image = images.get(source);
        if (image === undefined)
          throw new ArenaCorruption(`page ${source} is in the manifest but never arrived`);
        verifyImage(image, manifest.tag, source);
        const page = arena.newPage();
        const state = arena.pages.get(page)!;
        state.bytes.set(image);
        state.view.setUint32(12, page, true);
        state.view.setUint32(24, 0, true);
        state.used = image.length;
        state.live = state.view.getUint32(20, true);
        local.set(source, page);
      }
      arena.nextSeq = manifest.nextSeq;
      arena.rewriteRefs((target) => {
        const page = local.get(target.page);
        if (page === undefined)
          throw new ArenaCorruption(`a reference names page ${target.page}, which did not arrive`);
        return { page, offset: target.offset };
      });
      arena.check();
      for (const state of arena.pages.values()) state.dirty = false;
      return arena;
    } catch (error) {
      arena.dispose();
      throw error;
    }
  }

  /** Gives every page back to the pool. */
  dispose(): void {
    for (const page of [...this.pages.keys()]) this.dropPage(page);
    this.current = undefined;
    this.disposed = true;
  }

  private newPage(): number {
    if (this.pages.size >= this.pagesMax)
      throw new ArenaFull(
        `the arena holds its ${this.pagesMax} pages (${(this.pagesMax * ARENA_PAGE_BYTES) >> 20} MiB)`,
      );
    const taken = this.pool.take();
    if (taken === undefined)
      throw new ArenaFull(`the node's page pool is full (${this.pool.pagesMax} pages)`);
    const view = new DataView(taken.bytes.buffer, taken.bytes.byteOffset, ARENA_PAGE_BYTES);
    view.setUint32(0, PAGE_MAGIC, true);
    view.setUint16(4, PAGE_FORMAT, true);
    view.setUint32(8, this.tag, true);
    view.setUint32(12, taken.page, true);
    const state: PageState = {
      bytes: taken.bytes,
      view,
      used: PAGE_HEADER_BYTES,
      live: PAGE_HEADER_BYTES,
      dirty: true,
    };
    this.pages.set(taken.page, state);
    this.writeCounts(taken.page, state);
    return taken.page;
  }

  private dropPage(page: number): void {
    const state = this.pages.get(page);
    assert(state !== undefined, `page ${page} is this arena's`);
    this.pages.delete(page);
    if (this.current === page) this.current = undefined;
    this.pool.give(page, state.bytes);
  }

  private writeCounts(page: number, state: PageState): void {
    assert(this.pages.get(page) === state, "counts are written to the arena's own page");
    state.view.setUint32(16, state.used, true);
    state.view.setUint32(20, state.live, true);
  }

  private stateOf(ref: ArenaRef): PageState {
    const state = this.pages.get(ref.page);
    if (state === undefined) assertionFailed(`page ${ref.page} is not in this arena`);
    return state;
  }

  private liveState(ref: ArenaRef): PageState {
    const state = this.stateOf(ref);
    if (
      !(
        ref.offset >= PAGE_HEADER_BYTES &&
        ref.offset < state.used &&
        state.view.getUint8(ref.offset + 5) === STATE_LIVE
      )
    )
      assertionFailed(`no live record at ${refKey(ref)}`);
    return state;
  }

  private rewriteRefs(map: (target: ArenaRef) => ArenaRef): void {
    for (const [page, state] of this.pages) {
      const v = state.view;
      for (let offset = PAGE_HEADER_BYTES; offset < state.used; ) {
        const payload = v.getUint32(offset, true);
        if (v.getUint8(offset + 5) === STATE_LIVE) {
          const count = v.getUint16(offset + 6, true);
          for (let i = 0; i < count; i++) {
            const at = offset + RECORD_HEADER_BYTES + i * REF_BYTES;
            const before = { page: v.getUint32(at, true), offset: v.getUint32(at + 4, true) };
            const after = map(before);
            if (after.page !== before.page || after.offset !== before.offset) {
              v.setUint32(at, after.page, true);
              v.setUint32(at + 4, after.offset, true);
              state.dirty = true;
            }
          }
        }
        offset += align8(RECORD_HEADER_BYTES + payload);
      }
      assert(this.pages.get(page) === state, "references are rewritten in place");
    }
  }
}

export function refKey(ref: ArenaRef): string {
  return `${ref.page}:${ref.offset}`;
}

/** Checks one arriving page image: size, checksum, magic, format, tag and page number. */
export function verifyImage(image: Uint8Array, tag: number, page: number): void {
  if (image.length < PAGE_HEADER_BYTES || image.length > ARENA_PAGE_BYTES || image.length % 8 !== 0)
    throw new ArenaCorruption(`page ${page}: an image of ${image.length} bytes`);
  const copy = image.slice();
  const view = new DataView(copy.buffer);
  const sum = view.getUint32(24, true);
  view.setUint32(24, 0, true);
  if (crc32(copy) !== sum) throw new ArenaCorruption(`page ${page}: checksum mismatch`);
  if (view.getUint32(0, true) !== PAGE_MAGIC || view.getUint16(4, true) !== PAGE_FORMAT)
    throw new ArenaCorruption(`page ${page}: not an arena page`);
  if (view.getUint32(8, true) !== tag)
    throw new ArenaCorruption(`page ${page}: tagged ${view.getUint32(8, true)}, not ${tag}`);
  if (view.getUint32(12, true) !== page)
    throw new ArenaCorruption(`page ${page}: its header says ${view.getUint32(12, true)}`);
  if (view.getUint32(16, true) !== image.length)
    throw new ArenaCorruption(`page ${page}: used bytes do not match its length`);
}
