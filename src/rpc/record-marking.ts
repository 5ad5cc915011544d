import { assert, assertionFailed } from "../util/assert.ts";
import type { BufferPool } from "../util/buffer-pool.ts";
import { RPC_FRAGMENTS_PER_RECORD_MAX, RPC_RECORD_BYTES_MAX } from "./types.ts";

/** The record-marking header (RFC 5531 section 11): the top bit marks the last fragment. */
const LAST_FRAGMENT_BIT = 0x8000_0000;
const FRAGMENT_BYTES_MASK = 0x7fff_ffff;
export const FRAGMENT_HEADER_BYTES = 4;

export type RecordMarkingErrorCode = "RECORD_TOO_LARGE" | "TOO_MANY_FRAGMENTS";

/** A record broke a framing bound; the stream cannot be resynchronised, so its connection is closed. */
export class RecordMarkingError extends Error {
  override name = "RecordMarkingError";
  readonly code: RecordMarkingErrorCode;
  /** Bytes the record would hold with the fragment that broke the bound. */
  readonly recordBytes: number;
  /** Fragments of the record so far, counting the one that broke the bound. */
  readonly fragmentCount: number;
  constructor(code: RecordMarkingErrorCode, message: string, recordBytes: number, fragmentCount: number) {
    super(`${code}: ${message}`);
    this.code = code;
    this.recordBytes = recordBytes;
    this.fragmentCount = fragmentCount;
  }
}

export interface RecordDecoderOptions {
  readonly recordBytesMax?: number;
  readonly fragmentsPerRecordMax?: number;
  /**
   * Where a record of at least `pooledBytesMin` bytes that must be copied is put; its user gives the
   * buffer back (or not). Without a pool every copied record is a fresh buffer.
   */
  readonly pool?: BufferPool;
  readonly pooledBytesMin?: number;
}

/**
 * Reassembles records from a byte stream cut anywhere. It is pulled, not pushed: `push` only queues a
 * chunk, and `next` parses one record at a time, so a server that stops calling `next` (its in-flight
 * bound is reached) holds at most the unparsed bytes it was given, never a growing list of records.
 *
 * A fragment's bytes are kept as views of the pushed chunks; a record is copied once, into a buffer of
 * its final size, and only when it spans more than one chunk or fragment.
 */
export class RecordDecoder {
  private readonly recordBytesMax: number;
  private readonly fragmentsPerRecordMax: number;
  private readonly pool: BufferPool | undefined;
  private readonly pooledBytesMin: number;
  /** Pushed chunks not yet consumed; `chunks[chunkIndex]` is read from `chunkOffset`. */
  private chunks: Uint8Array[] = [];
  private chunkIndex = 0;
  private chunkOffset = 0;
  private queuedBytes = 0;
  /** Body bytes of the current fragment still to come, or -1 while its header is awaited. */
  private fragmentRemaining = -1;
  private fragmentIsLast = false;
  private recordPieces: Uint8Array[] = [];
  private recordBytes = 0;
  private fragmentCount = 0;
  private failure: RecordMarkingError | undefined;

  constructor(options: RecordDecoderOptions = {}) {
    this.recordBytesMax = options.recordBytesMax ?? RPC_RECORD_BYTES_MAX;
    this.fragmentsPerRecordMax = options.fragmentsPerRecordMax ?? RPC_FRAGMENTS_PER_RECORD_MAX;
    this.pool = options.pool;
    this.pooledBytesMin = options.pooledBytesMin ?? 0;
    assert(this.recordBytesMax >= 0 && this.recordBytesMax <= FRAGMENT_BYTES_MASK, "recordBytesMax range");
    assert(this.fragmentsPerRecordMax >= 1, "fragmentsPerRecordMax must be at least 1");
  }

  /** Bytes pushed but not yet parsed (the partial record's bytes already parsed are not counted). */
  get bufferedBytes(): number {
    return this.queuedBytes;
  }

  /** True between records: nothing of a record has been parsed and nothing is queued. */
  get idle(): boolean {
    return this.queuedBytes === 0 && this.fragmentRemaining === -1 && this.fragmentCount === 0;
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.queuedBytes += chunk.length;
  }

  /** The next complete record, or undefined until more bytes arrive. Throws RecordMarkingError. */
  next(): Uint8Array | undefined {
    if (this.failure !== undefined) throw this.failure;
    for (;;) {
      if (this.fragmentRemaining === -1) {
        if (this.queuedBytes < FRAGMENT_HEADER_BYTES) return undefined;
        this.startFragment(this.takeHeader());
      }
      this.takeFragmentBody();
      if (this.fragmentRemaining > 0) return undefined;
      this.fragmentRemaining = -1;
      if (this.fragmentIsLast) return this.finishRecord();
    }
  }

  private startFragment(header: number): void {
    const fragmentBytes = header & FRAGMENT_BYTES_MASK;
    this.fragmentIsLast = (header & LAST_FRAGMENT_BIT) !== 0;
    this.fragmentCount++;
    // Check the bounds on the header, before waiting for (and holding) the bytes it announces.
    if (this.fragmentCount > this.fragmentsPerRecordMax) {
      this.fail("TOO_MANY_FRAGMENTS", `more than ${this.fragmentsPerRecordMax} fragments in one record`);
    }
    if (this.recordBytes + fragmentBytes > this.recordBytesMax) {
      this.fail(
        "RECORD_TOO_LARGE",
        `record of at least ${this.recordBytes + fragmentBytes} bytes exceeds ${this.recordBytesMax}`,
        this.recordBytes + fragmentBytes,
      );
    }
    this.fragmentRemaining = fragmentBytes;
    this.recordBytes += fragmentBytes;
  }

  private fail(code: RecordMarkingErrorCode, message: string, recordBytes = this.recordBytes): never {
    this.failure = new RecordMarkingError(code, message, recordBytes, this.fragmentCount);
    // Drop what is held: the stream is dead and nothing more will be parsed from it.
    this.chunks = [];
    this.recordPieces = [];
    this.queuedBytes = 0;
    throw this.failure;
  }

  /** Reads the 4-byte header, which may straddle chunks. */
  private takeHeader(): number {
    let header = 0;
    for (let i = 0; i < FRAGMENT_HEADER_BYTES; i++) {
      const chunk = this.chunks[this.chunkIndex];
      assert(chunk !== undefined, "a queued byte has a chunk");
      header = header * 256 + (chunk[this.chunkOffset] ?? 0);
      this.advance(1, chunk);
    }
    return header;
  }

  /** Moves as much of the current fragment's body as is queued into the record's pieces. */
  private takeFragmentBody(): void {
    while (this.fragmentRemaining > 0 && this.queuedBytes > 0) {
      const chunk = this.chunks[this.chunkIndex];
      assert(chunk !== undefined, "a queued byte has a chunk");
      const count = Math.min(this.fragmentRemaining, chunk.length - this.chunkOffset);
      this.recordPieces.push(chunk.subarray(this.chunkOffset, this.chunkOffset + count));
      this.fragmentRemaining -= count;
      this.advance(count, chunk);
    }
  }

  private advance(count: number, chunk: Uint8Array): void {
    this.chunkOffset += count;
    this.queuedBytes -= count;
    if (this.chunkOffset < chunk.length) return;
    this.chunkIndex++;
    this.chunkOffset = 0;
    // Compact the consumed prefix now and then rather than shifting on every chunk (O(n^2) for many).
    if (this.chunkIndex === this.chunks.length) {
      this.chunks = [];
      this.chunkIndex = 0;
    } else if (this.chunkIndex >= 64) {
      this.chunks = this.chunks.slice(this.chunkIndex);
      this.chunkIndex = 0;
    }
  }

  private finishRecord(): Uint8Array {
    const pieces = this.recordPieces;
    const recordBytes = this.recordBytes;
    this.recordPieces = [];
    this.recordBytes = 0;
    this.fragmentCount = 0;
    if (pieces.length === 1) return pieces[0]!;
    // A fresh 1 MiB buffer per WRITE cost more than the copy itself (fresh pages from the kernel
    // each time); a pooled one is reused. A fresh one is not zeroed first: every byte is copied over.
    const pooled =
      this.pool !== undefined && recordBytes >= this.pooledBytesMin && recordBytes <= this.pool.bufferBytes;
    const record: Uint8Array =
      pooled && this.pool !== undefined
        ? this.pool.take().subarray(0, recordBytes)
        : new Uint8Array(Buffer.allocUnsafeSlow(recordBytes).buffer, 0, recordBytes);
    let at = 0;
    for (const piece of pieces) {
      record.set(piece, at);
      at += piece.length;
    }
    assert(at === recordBytes, "record pieces add up to the record's length");
    return record;
  }
}

/** Writes a record-marking header for a fragment of `fragmentBytes` into the first 4 bytes of `target`. */
export function writeFragmentHeader(target: Uint8Array, fragmentBytes: number, isLast: boolean): void {
  assert(Number.isInteger(fragmentBytes), "fragment length is an integer");
  if (!(fragmentBytes >= 0 && fragmentBytes <= FRAGMENT_BYTES_MASK))
    assertionFailed(`fragment of ${fragmentBytes} bytes`);
  assert(target.length >= FRAGMENT_HEADER_BYTES, "room for a fragment header");
  new DataView(target.buffer, target.byteOffset, FRAGMENT_HEADER_BYTES).setUint32(
    0,
    (isLast ? LAST_FRAGMENT_BIT : 0) + fragmentBytes,
    false,
  );
}

function fragmentHeader(fragmentBytes: number, isLast: boolean): Uint8Array {
  const header = new Uint8Array(FRAGMENT_HEADER_BYTES);
  writeFragmentHeader(header, fragmentBytes, isLast);
  return header;
}

/** One record as a single last fragment: its header, then the chunks themselves (not copied). */
export function encodeRecord(chunks: readonly Uint8Array[]): Uint8Array[] {
  let recordBytes = 0;
  for (const chunk of chunks) recordBytes += chunk.length;
  return [fragmentHeader(recordBytes, true), ...chunks];
}

/**
 * One record cut into the given fragments (each element becomes one fragment, the last one marked
 * last), as one buffer: for tests and tools that exercise reassembly.
 */
export function encodeFragments(fragments: readonly Uint8Array[]): Uint8Array {
  assert(fragments.length > 0, "a record has at least one fragment");
  let totalBytes = 0;
  for (const fragment of fragments) totalBytes += FRAGMENT_HEADER_BYTES + fragment.length;
  const bytes = new Uint8Array(totalBytes);
  let at = 0;
  fragments.forEach((fragment, index) => {
    bytes.set(fragmentHeader(fragment.length, index === fragments.length - 1), at);
    bytes.set(fragment, at + FRAGMENT_HEADER_BYTES);
    at += FRAGMENT_HEADER_BYTES + fragment.length;
  });
  return bytes;
}
