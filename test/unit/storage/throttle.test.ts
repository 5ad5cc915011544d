import assert from "node:assert/strict";
import { test } from "node:test";
import { KeyedSemaphore, Throttle } from "../../../src/storage/throttle.ts";

test("throttle: moves at about its rate after the first second's burst", async () => {
  const throttle = new Throttle(1_000_000);
  const started = performance.now();
  for (let i = 0; i < 15; i++) await throttle.take(100_000); // 1.5 MB: 1 MB burst, then 0.5 s
  const elapsedMs = performance.now() - started;
  assert.ok(elapsedMs >= 400, `took ${elapsedMs} ms`);
  assert.ok(elapsedMs < 1500, `took ${elapsedMs} ms`);
  const unlimited = new Throttle(0);
  const t0 = performance.now();
  for (let i = 0; i < 1000; i++) await unlimited.take(1 << 30);
  assert.ok(performance.now() - t0 < 200);
});

test("keyed semaphore: never more than the limit per key; waiters run in turn", async () => {
  const semaphore = new KeyedSemaphore(2);
  const held = new Map<string, number>();
  let peak = 0;
  const work = async (keys: string[]) => {
    using _slot = await semaphore.acquire(keys);
    for (const key of keys) held.set(key, (held.get(key) ?? 0) + 1);
    peak = Math.max(peak, ...held.values());
    await new Promise((resolve) => setTimeout(resolve, 2));
    for (const key of keys) held.set(key, (held.get(key) ?? 0) - 1);
  };
  const jobs = Array.from({ length: 40 }, (_, i) => work([`s${i % 3}`, `s${(i + 1) % 3}`]));
  await Promise.all(jobs);
  assert.equal(peak, 2);
  assert.ok([...held.values()].every((n) => n === 0));
});
