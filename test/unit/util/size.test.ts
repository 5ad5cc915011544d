import assert from "node:assert/strict";
import { test } from "node:test";
import { formatBytes, parseSize } from "../../../src/util/size.ts";

test("parseSize: plain bytes and binary units, any case, with or without B/iB", () => {
  const cases: [string, number][] = [
    ["4096", 4096],
    ["0", 0],
    ["1K", 1024],
    ["512M", 512 * 1024 ** 2],
    ["10G", 10 * 1024 ** 3],
    ["10g", 10 * 1024 ** 3],
    ["10GiB", 10 * 1024 ** 3],
    ["10GB", 10 * 1024 ** 3],
    ["1.5T", 1.5 * 1024 ** 4],
    [" 64 M ", 64 * 1024 ** 2],
  ];
  for (const [text, bytes] of cases) assert.equal(parseSize(text), bytes, text);
});

test("parseSize: refuses what is not a size with a RangeError that quotes the input", () => {
  for (const text of ["", "G", "-1G", "10X", "1e3", "ten", "1..5G", "10 G B", "0x10"]) {
    assert.throws(
      () => parseSize(text),
      (error: unknown) => error instanceof RangeError && error.message.includes(`"${text}"`),
      text,
    );
  }
});

test("parseSize: refuses a size beyond the safe integers", () => {
  assert.throws(() => parseSize("99999999T"), RangeError);
});

test("formatBytes: picks the largest unit that keeps the value at least 1", () => {
  assert.equal(formatBytes(512), "512 B");
  assert.equal(formatBytes(1536), "1.5 KiB");
  assert.equal(formatBytes(10 * 1024 ** 3), "10.0 GiB");
});
