import { assertionFailed } from "../util/assert.ts";

const encoder = new TextEncoder();
const INITIAL_BYTES = 256;

/** Encodes XDR into a growing buffer. */
export class XdrWriter {
  private buffer: Uint8Array;
  private view: DataView;
  private at = 0;

  constructor(initialBytes = INITIAL_BYTES) {
    this.buffer = new Uint8Array(initialBytes);
    this.view = new DataView(this.buffer.buffer);
  }

  get length(): number {
    return this.at;
  }

  private room(count: number): void {
    if (this.at + count <= this.buffer.length) return;
    let size = this.buffer.length * 2;
    while (size < this.at + count) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.buffer.subarray(0, this.at));
    this.buffer = grown;
    this.view = new DataView(grown.buffer);
  }

  u32(value: number): this {
    if (!(Number.isInteger(value) && value >= 0 && value <= 0xffffffff))
      assertionFailed(`u32 out of range: ${value}`);
    this.room(4);
    this.view.setUint32(this.at, value, false);
    this.at += 4;
    return this;
  }

  i32(value: number): this {
    if (!(Number.isInteger(value) && value >= -0x80000000 && value <= 0x7fffffff))
      assertionFailed(`i32 out of range: ${value}`);
    this.room(4);
    this.view.setInt32(this.at, value, false);
    this.at += 4;
    return this;
  }

  u64(value: bigint | number): this {
    if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) {
      // Sizes, offsets and ids: two words, no BigInt made per field.
      this.room(8);
      this.view.setUint32(this.at, Math.floor(value / 0x1_0000_0000), false);
      this.view.setUint32(this.at + 4, value >>> 0, false);
      this.at += 8;
      return this;
    }
    const big = typeof value === "bigint" ? value : BigInt(value);
    if (!(big >= 0n && big <= 0xffff_ffff_ffff_ffffn)) assertionFailed(`u64 out of range: ${big}`);
    this.room(8);
    this.view.setBigUint64(this.at, big, false);
    this.at += 8;
    return this;
  }

  bool(value: boolean): this {
    return this.u32(value ? 1 : 0);
  }

  opaqueFixed(bytes: Uint8Array): this {
    const padded = (bytes.length + 3) & ~3;
    this.room(padded);
    this.buffer.set(bytes, this.at);
    this.buffer.fill(0, this.at + bytes.length, this.at + padded);
    this.at += padded;
    return this;
  }

  opaque(bytes: Uint8Array): this {
    this.u32(bytes.length);
    return this.opaqueFixed(bytes);
  }

  string(text: string): this {
    return this.opaque(encoder.encode(text));
  }

  /** The encoded bytes (a view of the internal buffer: take it once, at the end). */
  bytes(): Uint8Array {
    return this.buffer.subarray(0, this.at);
  }
}
