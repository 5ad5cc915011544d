import assert from "node:assert/strict";
import { test } from "node:test";
import { DuplicateRequestCache } from "../../../src/nfs/dup-cache.ts";

test("a key runs once: a retransmission during the call waits for it, one after gets the stored reply", async () => {
  const cache = new DuplicateRequestCache<string>();
  let runs = 0;
  let release: () => void = () => undefined;
  const work = () =>
    new Promise<string>((resolve) => {
      runs++;
      release = () => resolve(`reply ${runs}`);
    });
  const first = cache.run("k", work, () => 10);
  const during = cache.run("k", work, () => 10);
  release();
  assert.equal(await first, "reply 1");
  assert.equal(await during, "reply 1");
  assert.equal(await cache.run("k", work, () => 10), "reply 1");
  assert.equal(runs, 1);
  assert.equal(cache.hits, 2);
});

test("a reply marked uncacheable (JUKEBOX) is not kept: the retransmission runs again", async () => {
  const cache = new DuplicateRequestCache<string>();
  let runs = 0;
  const work = async () => `reply ${++runs}`;
  await cache.run("k", work, () => null);
  assert.equal(await cache.run("k", work, () => null), "reply 2");
});

test("a failed call is forgotten, and the cache stays within its bounds", async () => {
  const cache = new DuplicateRequestCache<string>({ entriesMax: 3, bytesMax: 1000 });
  await assert.rejects(
    cache.run(
      "bad",
      async () => Promise.reject(new Error("x")),
      () => 1,
    ),
  );
  assert.equal(cache.size, 0);
  for (let i = 0; i < 10; i++)
    await cache.run(
      `k${i}`,
      async () => "r",
      () => 10,
    );
  assert.equal(cache.size, 3);
  const big = new DuplicateRequestCache<string>({ entriesMax: 100, bytesMax: 25 });
  for (let i = 0; i < 10; i++)
    await big.run(
      `k${i}`,
      async () => "r",
      () => 10,
    );
  assert.equal(big.size, 2);
});

test("eviction takes the oldest done entries first and never a running one, over many laps", async () => {
  const cache = new DuplicateRequestCache<string>({ entriesMax: 4, bytesMax: 1_000_000 });
  let release: () => void = () => undefined;
  const held = cache.run(
    "held",
    () => new Promise<string>((resolve) => (release = () => resolve("held reply"))),
    () => 1,
  );
  let runs = 0;
  const work = async () => `reply ${++runs}`;
  for (let i = 0; i < 5000; i++) await cache.run(`k${i}`, work, () => 1);
  assert.equal(cache.size, 5); // four kept replies and the running call
  // The newest four are kept (their calls are not run again); the running one survived every lap.
  for (const i of [4996, 4997, 4998, 4999])
    assert.equal(await cache.run(`k${i}`, work, () => 1), `reply ${i + 1}`);
  assert.equal(await cache.run("k4995", work, () => 1), "reply 5001");
  release();
  assert.equal(await held, "held reply");
  assert.equal(await cache.run("held", work, () => 1), "held reply");
});
