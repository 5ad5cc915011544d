import { XdrError } from "./xdr-error.ts";

const decoder = new TextDecoder("utf-8", { fatal: false });

/**
 * Decodes XDR (RFC 4506) from a buffer. Every read checks the bytes left and every variable-length
 * item its bound before anything is allocated; a violation throws XdrError.
 */
export class XdrReader {
  private readonly view: DataView;
  private readonly bytes: Uint8Array;
  private at: number;
  private readonly end: number;

  constructor(bytes: Uint8Array, start = 0, end = bytes.length) {
    // A plain Uint8Array view even of a Buffer: Buffer's slice() is a view, Uint8Array's a copy,
    // and callers that slice() what they read mean to keep a copy.
    this.bytes = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.at = start;
    this.end = end;
  }

  get offset(): number {
    return this.at;
  }

  get remaining(): number {
    return this.end - this.at;
  }

  private need(count: number, what: string): void {
    if (count > this.end - this.at) {
      throw new XdrError(`truncated: ${what} needs ${count} bytes, ${this.end - this.at} left`);
    }
  }

  u32(): number {
    this.need(4, "u32");
    const value = this.view.getUint32(this.at, false);
    this.at += 4;
    return value;
  }

  i32(): number {
    this.need(4, "i32");
    const value = this.view.getInt32(this.at, false);
    this.at += 4;
    return value;
  }

  u64(): bigint {
    this.need(8, "u64");
    const value = this.view.getBigUint64(this.at, false);
    this.at += 8;
    return value;
  }

  /** A u64 that must fit a safe JavaScript integer (offsets, sizes, ids). */
  u64Number(what = "u64"): number {
    const high = this.u32();
    const low = this.u32();
    if (high > 0x1fffff) throw new XdrError(`${what} ${high * 2 ** 32 + low} is beyond 2^53`);
    return high * 0x1_0000_0000 + low;
  }

  bool(): boolean {
    const value = this.u32();
    if (value > 1) throw new XdrError(`bool with value ${value}`);
    return value === 1;
  }

  /** A value of an enum; anything not in `allowed` is malformed. */
  enumOf<T extends number>(allowed: readonly T[], what: string): T {
    const value = this.u32();
    if (!allowed.includes(value as T)) throw new XdrError(`${what} has no value ${value}`);
    return value as T;
  }

  opaqueFixed(length: number): Uint8Array {
    const padded = (length + 3) & ~3;
    this.need(padded, `opaque[${length}]`);
    const value = this.bytes.subarray(this.at, this.at + length);
    this.at += padded;
    return value;
  }

  /** Variable-length opaque of at most `max` bytes; a view into the input, not a copy. */
  opaque(max: number, what = "opaque"): Uint8Array {
    const length = this.u32();
    if (length > max) throw new XdrError(`${what} of ${length} bytes exceeds ${max}`);
    return this.opaqueFixed(length);
  }

  string(max: number, what = "string"): string {
    return decoder.decode(this.opaque(max, what));
  }

  /** Optional data (XDR `*T`): a bool, then the value when it is true. */
  optional<T>(read: () => T): T | undefined {
    return this.bool() ? read() : undefined;
  }

  /** The bytes not yet read, as a view (for checksumming arguments without consuming them). */
  rest(): Uint8Array {
    return this.bytes.subarray(this.at, this.end);
  }

  /** Throws unless every byte was consumed: trailing garbage is malformed too. */
  finish(what: string): void {
    if (this.at !== this.end) throw new XdrError(`${what}: ${this.end - this.at} bytes left over`);
  }
}
