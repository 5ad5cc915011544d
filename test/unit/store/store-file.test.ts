/**
 * The embedded store kept in a file: keys and revisions survive a reopen, lease-bound keys do not,
 * the revision carries on, concurrent writes are all saved, a damaged file is an error, and a save
 * that fails is reported as UNAVAILABLE. The store's contract holds for a persistent store too.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { EmbeddedStore, StoreError } from "../../../src/store/index.ts";
import { StoreFileError } from "../../../src/store/store-file.ts";
import { ManualClock } from "../../../src/util/clock.ts";
import { storeContract } from "../../support/store-contract.ts";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "flotilla-store-file-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
let opened = 0;
let contractClock = new ManualClock();
storeContract("embedded, persistent", {
  open: async () => {
    contractClock = new ManualClock();
    return EmbeddedStore.open({ clock: contractClock, persistPath: join(dir, `contract-${opened++}.json`) });
  },
  elapse: async (ms) => contractClock.advance(ms),
});

test("persistent store: keys and revisions survive a reopen; lease-bound keys do not", async () => {
  const path = join(dir, "reopen.json");
  const first = await EmbeddedStore.open({ persistPath: path });
  await first.put("a", bytes("1"));
  await first.put("a", bytes("2"));
  await first.put("b", bytes("x"));
  await first.delete("b");
  await first.txn([{ key: "c", target: "create", equals: 0 }], [{ op: "put", key: "c", value: bytes("3") }]);
  const lease = await first.grantLease(60_000);
  await first.put("leased", bytes("gone"), { lease: lease.id });
  const a = await first.get("a");
  const before = (await first.range("")).revision;
  await first.close();

  const second = await EmbeddedStore.open({ persistPath: path });
  const again = await second.get("a");
  assert.deepEqual(again?.value, bytes("2"));
  assert.equal(again?.createRevision, a?.createRevision);
  assert.equal(again?.modRevision, a?.modRevision);
  assert.equal(again?.version, 2);
  assert.equal(await second.get("b"), undefined);
  assert.deepEqual((await second.get("c"))?.value, bytes("3"));
  assert.equal(await second.get("leased"), undefined, "a lease does not outlive a restart");
  assert.ok(
    (await second.range("")).revision >= before - 1,
    "the revision carries on from the last saved change",
  );
  const next = await second.put("d", bytes("4"));
  assert.ok(next.revision > (again?.modRevision ?? 0), "revisions carry on");
  await second.close();
});

test("persistent store: 100 concurrent writes are all on disk when they return", async () => {
  const path = join(dir, "concurrent.json");
  const store = await EmbeddedStore.open({ persistPath: path });
  await Promise.all(Array.from({ length: 100 }, (_, i) => store.put(`k/${i}`, bytes(String(i)))));
  // Not closed: what the file holds now is what a crash would leave.
  const reopened = await EmbeddedStore.open({ persistPath: path });
  const { kvs } = await reopened.range("k/");
  assert.equal(kvs.length, 100);
  await reopened.close();
  await store.close();
});

test("persistent store: a damaged file is an error naming it; a failed save is UNAVAILABLE", async () => {
  const damaged = join(dir, "damaged.json");
  await writeFile(damaged, "{ not json");
  await assert.rejects(
    EmbeddedStore.open({ persistPath: damaged }),
    (e: unknown) => e instanceof StoreFileError && e.message.includes(damaged),
  );
  await writeFile(
    damaged,
    JSON.stringify({ format: "flotilla-embedded-store", version: 9, revision: 1, kvs: [] }),
  );
  await assert.rejects(EmbeddedStore.open({ persistPath: damaged }), StoreFileError);

  // The file's directory is a regular file: every save fails.
  const blocker = join(dir, "not-a-dir");
  await writeFile(blocker, "");
  const store = new EmbeddedStore({ clock: new ManualClock(), persistPath: join(blocker, "store.json") });
  await assert.rejects(
    store.put("a", bytes("1")),
    (e: unknown) => e instanceof StoreError && e.code === "UNAVAILABLE",
  );
  const lease = await store.grantLease(60_000);
  await store.put("leased", bytes("1"), { lease: lease.id });
  await store.close();
});
