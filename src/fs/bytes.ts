import { crc32 } from "../util/crc32.ts";

/** CRC-32 of a block or buffer: the checksum every pointer in the volume carries. */
export function checksum(data: Uint8Array): number {
  return crc32(data) >>> 0;
}

/** Little-endian helpers for integers up to 2^53 stored as two 32-bit halves. */
export function writeU64(view: DataView, offset: number, value: number): void {
  view.setUint32(offset, value >>> 0, true);
  view.setUint32(offset + 4, Math.floor(value / 0x1_0000_0000), true);
}

export function readU64(view: DataView, offset: number): number {
  return view.getUint32(offset, true) + view.getUint32(offset + 4, true) * 0x1_0000_0000;
}

export function writeU48(view: DataView, offset: number, value: number): void {
  view.setUint32(offset, value >>> 0, true);
  view.setUint16(offset + 4, Math.floor(value / 0x1_0000_0000), true);
}

export function readU48(view: DataView, offset: number): number {
  return view.getUint32(offset, true) + view.getUint16(offset + 4, true) * 0x1_0000_0000;
}

export function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: false });

export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

export function fromUtf8(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}
