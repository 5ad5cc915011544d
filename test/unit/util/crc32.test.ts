// The native CRC-32 must give zlib's values: volumes and chunk files written before it used zlib's.
import assert from "node:assert/strict";
import { test } from "node:test";
import { crc32 as zlibCrc32 } from "node:zlib";
import fc from "fast-check";
import { crc32 } from "../../../src/util/crc32.ts";

test("crc32: the known check value and the empty input", () => {
  assert.equal(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
  assert.equal(crc32(new Uint8Array(0)), 0);
  assert.equal(crc32("123456789"), 0xcbf43926);
});

test("crc32: equals zlib's crc32 for any bytes, seed and view offset", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 9000 }),
      fc.nat(16),
      fc.integer({ min: 0, max: 0xffff_ffff }),
      (bytes, cut, seed) => {
        const view = bytes.subarray(Math.min(cut, bytes.length));
        assert.equal(crc32(view), zlibCrc32(view) >>> 0);
        assert.equal(crc32(view, seed), zlibCrc32(view, seed) >>> 0);
      },
    ),
    { numRuns: 500 },
  );
});

test("crc32: continuing from a prefix's CRC gives the whole input's CRC", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 5000 }), fc.nat(), (bytes, at) => {
      const cut = at % (bytes.length + 1);
      assert.equal(crc32(bytes.subarray(cut), crc32(bytes.subarray(0, cut))), crc32(bytes));
    }),
  );
});
