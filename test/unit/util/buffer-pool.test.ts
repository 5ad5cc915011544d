import assert from "node:assert/strict";
import { test } from "node:test";
import { BufferPool } from "../../../src/util/buffer-pool.ts";

test("BufferPool: reuses what it was given back, keeps no more than its bound", () => {
  const pool = new BufferPool(8192, 2);
  const [a, b, c] = [pool.take(), pool.take(), pool.take()];
  assert.equal(a.byteLength, 8192);
  assert.notEqual(a.buffer, b.buffer);
  pool.give(a);
  pool.give(b.subarray(0, 100));
  pool.give(c);
  assert.equal(pool.freeCount, 2, "no more than the bound are kept");
  const again = [pool.take(), pool.take()];
  assert.deepEqual(new Set(again.map((x) => x.buffer)), new Set([a.buffer, b.buffer]));
  assert.ok(
    again.every((x) => x.byteLength === 8192),
    "a buffer given back by a short view is whole again",
  );
  assert.equal(pool.take().buffer === c.buffer, false, "a buffer past the bound was dropped");
});

test("BufferPool: tells its own lent buffers from others, and refuses a second give or a stranger", () => {
  const pool = new BufferPool(4096, 4);
  const a = pool.take();
  assert.ok(pool.lent(a.subarray(0, 10)));
  assert.equal(pool.lent(new Uint8Array(4096)), false);
  assert.throws(() => pool.give(a.subarray(1)), /from its start/);
  pool.give(a);
  assert.equal(pool.lent(a), false);
  assert.throws(() => pool.give(a), /given back once/);
  assert.throws(() => pool.give(new Uint8Array(4096)), /only if it was lent/);
});
