/** Numbers as the dashboard shows them. */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  formatAgo,
  formatBytes,
  formatClock,
  formatLoad,
  formatRate,
  percent,
} from "../../../src/ui/format.ts";

test("sizes in binary units, bytes whole", () => {
  assert.equal(formatBytes(0), "0 B");
  assert.equal(formatBytes(1023), "1023 B");
  assert.equal(formatBytes(1024), "1.0 KiB");
  assert.equal(formatBytes(64 * 1024 * 1024), "64.0 MiB");
  assert.equal(formatBytes(16 * 1024 ** 3), "16.0 GiB");
  assert.equal(formatRate(1536.4), "1.5 KiB/s");
});

test("loads to two places, none as a dash", () => {
  assert.equal(formatLoad(0.256), "0.26");
  assert.equal(formatLoad(null), "-");
});

test("percent is whole and clamped; nothing to do is done", () => {
  assert.equal(percent(1, 3), 33);
  assert.equal(percent(5, 4), 100);
  assert.equal(percent(-1, 4), 0);
  assert.equal(percent(0, 0), 100);
});

test("clock time to the millisecond, local; ages coarse", () => {
  const at = new Date(2026, 0, 2, 3, 4, 5, 67).getTime();
  assert.equal(formatClock(at), "03:04:05.067");
  assert.equal(formatAgo(at, at + 4_400), "4 s ago");
  assert.equal(formatAgo(at, at - 1000), "0 s ago", "a clock a little behind is not negative");
  assert.equal(formatAgo(at, at + 3 * 60_000), "3 min ago");
  assert.equal(formatAgo(at, at + 3 * 3_600_000), "3 h ago");
});
