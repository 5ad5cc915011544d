import assert from "node:assert/strict";
import { test } from "node:test";
import { EmbeddedStore, StoreError } from "../../../src/store/index.ts";
import { ManualClock } from "../../../src/util/clock.ts";
import { storeContract } from "../../support/store-contract.ts";

let clock = new ManualClock();
storeContract("embedded", {
  open: async () => {
    clock = new ManualClock();
    return new EmbeddedStore({ clock });
  },
  elapse: async (ms) => clock.advance(ms),
});

test("embedded: a closed store refuses calls; a watch from a compacted revision is refused", async () => {
  const store = new EmbeddedStore({ clock: new ManualClock() });
  await store.close();
  await assert.rejects(store.get("/a"), (e: unknown) => e instanceof StoreError && e.code === "CLOSED");
  await assert.rejects(store.grantLease(10), (e: unknown) => e instanceof StoreError && e.code === "CLOSED");
  const small = new EmbeddedStore({ clock: new ManualClock(), historyEventsMax: 10 });
  const first = (await small.put("/h", new Uint8Array([0]))).revision;
  for (let i = 1; i < 20; i++) await small.put("/h", new Uint8Array([i]));
  await assert.rejects(
    small.watch("/h", first, () => undefined),
    (e: unknown) => e instanceof StoreError && e.code === "COMPACTED",
  );
  const recent = await small.watch("/h", first + 15, () => undefined);
  await recent.cancel();
  await small.close();
});
