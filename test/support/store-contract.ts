import assert from "node:assert/strict";
import { test } from "node:test";
import { type CoordinationStore, StoreError, type WatchEvent } from "../../src/store/index.ts";

/** How a contract run gets a fresh store and makes time pass for lease expiry. */
export interface StoreHarness {
  open(): Promise<CoordinationStore>;
  /** Lets `ms` of the store's time pass (a manual clock advances; a real store waits). */
  elapse(ms: number): Promise<void>;
}

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const text = (b: Uint8Array | undefined): string | undefined =>
  b === undefined ? undefined : new TextDecoder().decode(b);

/**
 * Waits, one macrotask at a time, until `condition` holds or `timeoutMs` of real time pass (a store
 * over the network needs round trips, not just turns of the event loop).
 */
async function until(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadlineMs = performance.now() + timeoutMs;
  while (!condition() && performance.now() < deadlineMs) {
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  assert.ok(condition(), `condition did not hold within ${timeoutMs} ms`);
}

/** The behaviour every CoordinationStore implementation must show. */
export function storeContract(name: string, harness: StoreHarness): void {
  const withStore = (title: string, body: (store: CoordinationStore) => Promise<void>): void => {
    test(`${name}: ${title}`, async () => {
      const store = await harness.open();
      try {
        await body(store);
      } finally {
        await store.close();
      }
    });
  };

  withStore("put, get and delete, with revisions and versions", async (store) => {
    const first = await store.put("/a", bytes("1"));
    const second = await store.put("/a", bytes("2"));
    assert.ok(second.revision > first.revision, "every write raises the revision");
    const kv = await store.get("/a");
    assert.equal(text(kv?.value), "2");
    assert.equal(kv?.createRevision, first.revision);
    assert.equal(kv?.modRevision, second.revision);
    assert.equal(kv?.version, 2);
    const gone = await store.delete("/a");
    assert.equal(gone.deleted, true);
    assert.equal(await store.get("/a"), undefined);
    assert.equal((await store.delete("/a")).deleted, false);
  });

  withStore("range returns exactly the keys under a prefix, in key order", async (store) => {
    for (const key of ["/n/b", "/n/a", "/m/x", "/n/c/d", "/nx"]) await store.put(key, bytes(key));
    const { kvs } = await store.range("/n/");
    assert.deepEqual(
      kvs.map((kv) => kv.key),
      ["/n/a", "/n/b", "/n/c/d"],
    );
  });

  withStore(
    "a transaction applies one branch atomically, by compare-and-swap on revisions",
    async (store) => {
      const { revision } = await store.put("/lock", bytes("owner-1"));
      const lost = await store.txn(
        [{ key: "/lock", target: "mod", equals: revision - 1 }],
        [{ op: "put", key: "/lock", value: bytes("owner-2") }],
        [{ op: "get", key: "/lock" }],
      );
      assert.equal(lost.succeeded, false);
      assert.equal(text(lost.gets[0]?.value), "owner-1");
      const won = await store.txn(
        [{ key: "/lock", target: "mod", equals: revision }],
        [
          { op: "put", key: "/lock", value: bytes("owner-2") },
          { op: "put", key: "/epoch", value: bytes("2") },
        ],
      );
      assert.equal(won.succeeded, true);
      assert.equal(text((await store.get("/lock"))?.value), "owner-2");
      assert.equal(
        (await store.get("/lock"))?.modRevision,
        (await store.get("/epoch"))?.modRevision,
        "one revision for the whole transaction",
      );
      const create = await store.txn(
        [{ key: "/new", target: "create", equals: 0 }],
        [{ op: "put", key: "/new", value: bytes("x") }],
      );
      assert.equal(create.succeeded, true, "create == 0 means the key does not exist");
      const again = await store.txn(
        [{ key: "/new", target: "create", equals: 0 }],
        [{ op: "put", key: "/new", value: bytes("y") }],
      );
      assert.equal(again.succeeded, false);
    },
  );

  withStore(
    "a watch from a past revision replays history, then follows live changes in order",
    async (store) => {
      const start = (await store.put("/w/a", bytes("1"))).revision;
      await store.put("/other", bytes("x"));
      await store.delete("/w/a");
      const events: WatchEvent[] = [];
      const watch = await store.watch("/w/", start, (event) => events.push(event));
      await until(() => events.length === 2);
      await store.put("/w/b", bytes("2"));
      await until(() => events.length === 3);
      await watch.cancel();
      await store.put("/w/c", bytes("3"));
      await new Promise<void>((resolve) => setImmediate(resolve));
      assert.deepEqual(
        events.map((e) => (e.type === "put" ? `put ${e.kv.key}` : `delete ${e.key}`)),
        ["put /w/a", "delete /w/a", "put /w/b"],
      );
    },
  );

  withStore(
    "keys attached to a lease vanish when it is revoked or expires; keep-alive holds it",
    async (store) => {
      const revoked = await store.grantLease(1000);
      await store.put("/leased/r", bytes("r"), { lease: revoked.id });
      await revoked.revoke();
      await until(() => true);
      assert.equal(await store.get("/leased/r"), undefined);
      const kept = await store.grantLease(1000);
      await store.put("/leased/k", bytes("k"), { lease: kept.id });
      for (let i = 0; i < 4; i++) {
        await harness.elapse(400);
        await kept.keepAlive();
      }
      assert.equal(text((await store.get("/leased/k"))?.value), "k", "kept alive past its TTL");
      await harness.elapse(2500);
      await until(() => true);
      assert.equal(await store.get("/leased/k"), undefined, "gone once it expired");
      await assert.rejects(
        kept.keepAlive(),
        (e: unknown) => e instanceof StoreError && e.code === "LEASE_LOST",
      );
      await assert.rejects(
        store.put("/x", bytes("x"), { lease: kept.id }),
        (e: unknown) => e instanceof StoreError && e.code === "LEASE_LOST",
      );
    },
  );
}
