import assert from "node:assert/strict";
import { test } from "node:test";
import { pino } from "pino";
import { releaseHolder, takeHolder } from "../../../src/cluster/handover.ts";
import { EmbeddedStore } from "../../../src/store/index.ts";

const log = pino({ level: "silent" });

async function take(store: EmbeddedStore, nodeId: string, waitMs: number, wanted = () => true) {
  const lease = await store.grantLease(60_000);
  return takeHolder({
    store,
    nodeId,
    vserverId: "vs",
    generation: 1,
    leaseId: lease.id,
    waitMs,
    log,
    nextChange: (ms) => new Promise((resolve) => setTimeout(resolve, Math.min(ms, 10))),
    stillWanted: wanted,
  });
}

test("a new holder waits for the old one to let go, then takes over without force", async () => {
  await using store = new EmbeddedStore();
  const first = await take(store, "n1", 5_000);
  assert.ok(first !== undefined && !first.forced && first.from === undefined);
  let released = false;
  const second = take(store, "n2", 5_000);
  setTimeout(() => {
    released = true;
    void releaseHolder(store, first);
  }, 100);
  const claim = await second;
  assert.ok(released, "the second holder did not wait for the first to let go");
  assert.ok(claim !== undefined && !claim.forced, "a handover is not forced");
  assert.equal(claim.from, "n1");
});

test("a holder that does not let go is fenced after the bounded wait, and cannot delete the new claim", async () => {
  await using store = new EmbeddedStore();
  const first = await take(store, "n1", 5_000);
  assert.ok(first !== undefined);
  const started = performance.now();
  const second = await take(store, "n2", 150);
  assert.ok(performance.now() - started >= 140, "the forced takeover waited for the bound");
  assert.ok(second !== undefined);
  assert.ok(second.forced, "the takeover is marked forced");
  assert.equal(second.from, "n1");
  assert.equal(await releaseHolder(store, first), false, "the old claim no longer holds the key");
  assert.equal(await releaseHolder(store, second), true);
  assert.equal(await store.get("cluster/holders/vs"), undefined);
});

test("a holder whose lease ran out is no reason to wait; a take that is no longer wanted gives up", async () => {
  await using store = new EmbeddedStore();
  const lease = await store.grantLease(60_000);
  const first = await takeHolder({
    store,
    nodeId: "n1",
    vserverId: "vs",
    generation: 1,
    leaseId: lease.id,
    waitMs: 5_000,
    log,
    nextChange: async () => {},
    stillWanted: () => true,
  });
  assert.ok(first !== undefined);
  await lease.revoke();
  const started = performance.now();
  const second = await take(store, "n2", 5_000);
  assert.ok(second !== undefined && !second.forced && performance.now() - started < 1_000);
  assert.equal(await take(store, "n3", 5_000, () => false), undefined);
});
