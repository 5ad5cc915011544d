// The etcd coordination store against a real etcd (Debian's etcd-server): the contract every store
// passes, then what only a store over the network shows: etcd gone or frozen, leases that run out,
// compacted history, namespaces.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { Etcd3 } from "etcd3";
import {
  type CoordinationStore,
  EtcdStore,
  type EtcdStoreOptions,
  retryWithBackoff,
  StoreError,
  type StoreErrorCode,
} from "../../src/store/index.ts";
import { type EtcdProcess, etcdSkipReason, startEtcd } from "../support/etcd-process.ts";
import { storeContract } from "../support/store-contract.ts";

/** Short, so that the tests of a dead etcd take seconds; the default is 5 s. */
const CALL_TIMEOUT_MS = 1000;
/** What a failing call may take beyond its deadline: scheduling, a loaded CI machine. */
const SLACK_MS = 1500;
/** Bounds on waiting for etcd to act on its own (expire a lease, serve again after a restart). */
const CONDITION_MS_MAX = 10_000;
const FILE_MS_MAX = 120_000;

const skip = etcdSkipReason();

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const text = (b: Uint8Array | undefined): string | undefined =>
  b === undefined ? undefined : new TextDecoder().decode(b);

/** A namespace no other test uses, so tests share one etcd without seeing each other's keys. */
const freshNamespace = (): string => `/test-${randomUUID()}`;

const isStoreError =
  (...codes: StoreErrorCode[]) =>
  (error: unknown): boolean =>
    error instanceof StoreError && codes.includes(error.code);

/** Rejects with one of `codes`, and within the call deadline plus slack rather than hanging. */
async function rejectsPromptly(call: () => Promise<unknown>, ...codes: StoreErrorCode[]): Promise<void> {
  const startedMs = performance.now();
  await assert.rejects(call(), isStoreError(...codes));
  const tookMs = performance.now() - startedMs;
  assert.ok(tookMs < CALL_TIMEOUT_MS + SLACK_MS, `took ${Math.round(tookMs)} ms to fail`);
}

/** Polls `check` until it is true, for at most CONDITION_MS_MAX. */
async function eventually(what: string, check: () => Promise<boolean> | boolean): Promise<void> {
  const deadlineMs = performance.now() + CONDITION_MS_MAX;
  while (performance.now() < deadlineMs) {
    if (await check()) return;
    await delay(50);
  }
  assert.fail(`${what}: not within ${CONDITION_MS_MAX} ms`);
}

describe("etcd coordination store", { skip, timeout: FILE_MS_MAX }, () => {
  let etcd: EtcdProcess;
  const connect = (options: Partial<EtcdStoreOptions> = {}): Promise<EtcdStore> =>
    EtcdStore.connect({
      endpoints: [etcd.endpoint],
      callTimeoutMs: CALL_TIMEOUT_MS,
      namespace: freshNamespace(),
      ...options,
    });

  before(async () => {
    etcd = await startEtcd();
  });
  after(async () => {
    await etcd?.stop();
  });

  storeContract("etcd", {
    open: (): Promise<CoordinationStore> => connect(),
    elapse: (ms) => delay(ms),
  });

  test("etcd: a closed store refuses calls", async () => {
    const store = await connect();
    const lease = await store.grantLease(1000);
    await store.close();
    await assert.rejects(store.get("/a"), isStoreError("CLOSED"));
    await assert.rejects(
      store.watch("/", 0, () => undefined),
      isStoreError("CLOSED"),
    );
    await assert.rejects(lease.keepAlive(), isStoreError("CLOSED"));
  });

  test("etcd: namespaces keep stores apart; keys carry the namespace only inside etcd", async () => {
    const namespace = freshNamespace();
    await using mine = await connect({ namespace });
    await using theirs = await connect();
    await mine.put("/k", bytes("mine"));
    await theirs.put("/k", bytes("theirs"));
    assert.equal(text((await mine.get("/k"))?.value), "mine");
    assert.deepEqual(
      (await mine.range("")).kvs.map((kv) => kv.key),
      ["/k"],
    );
    await using bare = await EtcdStore.connect({ endpoints: [etcd.endpoint] });
    assert.equal(text((await bare.get(`${namespace}/k`))?.value), "mine");
  });

  test("etcd: a range larger than one page comes back whole, in key order", async () => {
    await using store = await connect();
    const keys = Array.from({ length: 2500 }, (_, i) => `/many/${String(i).padStart(5, "0")}`);
    for (let i = 0; i < keys.length; i += 100) {
      const batch = keys.slice(i, i + 100);
      await store.txn(
        [],
        batch.map((key) => ({ op: "put" as const, key, value: bytes(key) })),
      );
    }
    const { kvs } = await store.range("/many/");
    assert.deepEqual(
      kvs.map((kv) => kv.key),
      keys,
    );
  });

  test("etcd: a lease left without keep-alive runs out: its keys go, keep-alive says LEASE_LOST", async () => {
    await using store = await connect();
    const lease = await store.grantLease(1000);
    assert.equal(lease.ttlMs, 1000, "the test's etcd allows a 1 s TTL");
    await store.put("/ephemeral", bytes("x"), { lease: lease.id });
    await eventually("the leased key vanishes", async () => (await store.get("/ephemeral")) === undefined);
    await assert.rejects(lease.keepAlive(), isStoreError("LEASE_LOST"));
  });

  test("etcd: TTLs are whole seconds, rounded up", async () => {
    await using store = await connect();
    assert.equal((await store.grantLease(1)).ttlMs, 1000);
    assert.equal((await store.grantLease(1001)).ttlMs, 2000);
    await assert.rejects(store.grantLease(0), isStoreError("INVALID"));
  });

  test("etcd: a watch from a compacted revision is refused COMPACTED; from a later one it works", async () => {
    await using store = await connect();
    const first = (await store.put("/c/a", bytes("1"))).revision;
    const last = (await store.put("/c/a", bytes("2"))).revision;
    const raw = new Etcd3({ hosts: [etcd.endpoint] });
    try {
      await raw.kv.compact({ revision: last, physical: true });
    } finally {
      raw.close();
    }
    await assert.rejects(
      store.watch("/c/", first, () => undefined),
      isStoreError("COMPACTED"),
    );
    const seen: string[] = [];
    const watch = await store.watch("/c/", last, (event) => {
      if (event.type === "put") seen.push(text(event.kv.value) ?? "");
    });
    await eventually("the watch replays the last put", () => seen.length === 1);
    assert.deepEqual(seen, ["2"]);
    // A revision etcd has not reached yet is not compacted: the watch waits for it.
    const future = await store.watch("/c/", last + 1000, () => undefined);
    await future.cancel();
    await watch.cancel();
  });

  test("etcd: with etcd down calls fail UNAVAILABLE within their deadline; after a restart data and calls are back", async () => {
    await using down = await startEtcd();
    await using store = await connect({ endpoints: [down.endpoint] });
    await store.put("/kept", bytes("before"));
    const lease = await store.grantLease(5000);
    const watchErrors: StoreError[] = [];
    await store.watch("/", 0, () => undefined, { onError: (error) => watchErrors.push(error) });

    // Frozen: the connection stays open but nothing answers, so only the deadline ends the call.
    await down.pause();
    await rejectsPromptly(() => store.get("/kept"), "UNAVAILABLE");
    down.resume();

    await down.kill();
    await eventually("the watch reports the loss", () => watchErrors.length === 1);
    assert.equal(watchErrors[0]?.code, "UNAVAILABLE");
    await rejectsPromptly(() => store.get("/kept"), "UNAVAILABLE");
    await rejectsPromptly(() => store.put("/other", bytes("x")), "UNAVAILABLE");
    await rejectsPromptly(() => store.txn([], [{ op: "get", key: "/kept" }]), "UNAVAILABLE");
    await rejectsPromptly(() => lease.keepAlive(), "UNAVAILABLE", "LEASE_LOST");
    await rejectsPromptly(() => store.watch("/", 0, () => undefined), "UNAVAILABLE");
    await rejectsPromptly(() => connect({ endpoints: [down.endpoint] }), "UNAVAILABLE");

    await down.start();
    const kept = await retryWithBackoff(() => store.get("/kept"), {
      attemptsMax: 20,
      baseDelayMs: 50,
      maxDelayMs: 500,
    });
    assert.equal(text(kept?.value), "before", "the data survived the restart");
    await store.put("/after", bytes("after"));
    assert.equal(text((await store.get("/after"))?.value), "after");
  });
});
