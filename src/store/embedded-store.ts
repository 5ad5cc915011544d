import { assert } from "../util/assert.ts";
import { type Clock, systemClock } from "../util/clock.ts";
import { readStoreFile, writeStoreFile } from "./store-file.ts";
import {
  type Compare,
  type CoordinationStore,
  type KeyValue,
  type Lease,
  type LeaseId,
  StoreError,
  type TxnOp,
  type TxnResult,
  type Watch,
  type WatchEvent,
} from "./types.ts";

/** Changes kept for watches that start in the past; older revisions are compacted away. */
export const HISTORY_EVENTS_MAX = 100_000;
const LEASE_CHECK_INTERVAL_MS = 50;
const LEASE_TTL_MS_MIN = 100;

interface LeaseState {
  readonly ttlMs: number;
  expiresAtMs: number;
  readonly keys: Set<string>;
}

export interface EmbeddedStoreOptions {
  readonly clock?: Clock;
  readonly historyEventsMax?: number;
  readonly persistPath?: string;
}

interface Watcher {
  readonly prefix: string;
  readonly onEvent: (event: WatchEvent) => void;
}

const equalBytes = (a: Uint8Array, b: Uint8Array): boolean =>
  a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * The coordination store for a cluster whose nodes all run in one process: the same semantics as
 * etcd (one revision per write transaction, watches from a past revision, leases), kept in memory.
 */
export class EmbeddedStore implements CoordinationStore {
  private revision = 0;
  private compactedRevision = 0;
  private readonly kvs = new Map<string, KeyValue>();
  private readonly history: Array<{ revision: number; event: WatchEvent }> = [];
  private readonly watchers = new Set<Watcher>();
  private readonly leases = new Map<LeaseId, LeaseState>();
  private nextLease = 1;
  private closed = false;
  private readonly clock: Clock;
  private readonly leaseTimer: Disposable;
  private readonly historyEventsMax: number;

  /** Where the store keeps its keys across restarts (none: memory only). */
  private readonly persistPath: string | undefined;
  /** The revision the file holds; a transaction that changed a durable key waits until it covers it. */
  private savedRevision = 0;
  private saving: Promise<void> | undefined;

  constructor(options: EmbeddedStoreOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.historyEventsMax = options.historyEventsMax ?? HISTORY_EVENTS_MAX;
    this.persistPath = options.persistPath;
    this.leaseTimer = this.clock.every(LEASE_CHECK_INTERVAL_MS, () => this.expireLeases());
  }

  /**
   * A store kept in `persistPath` as well as in memory: its keys (not those bound to leases, which
   * do not outlive a restart) and revisions are read back from there, and every transaction that
   * changes one is on disk before it returns. A damaged file is an error, never an empty store.
   */
  static async open(
    options: EmbeddedStoreOptions & { readonly persistPath: string },
  ): Promise<EmbeddedStore> {
    const contents = await readStoreFile(options.persistPath);
    const store = new EmbeddedStore(options);
    if (contents !== undefined) {
      for (const kv of contents.kvs) store.kvs.set(kv.key, kv);
      store.revision = contents.revision;
      store.compactedRevision = contents.revision;
      store.savedRevision = contents.revision;
    }
    return store;
  }

  private open(): void {
    if (this.closed) throw new StoreError("CLOSED", "the store is closed");
  }

  async get(key: string): Promise<KeyValue | undefined> {
    this.open();
    return this.kvs.get(key);
  }

  async range(prefix: string): Promise<{ kvs: KeyValue[]; revision: number }> {
    this.open();
    const kvs = [...this.kvs.values()].filter((kv) => kv.key.startsWith(prefix));
    kvs.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return { kvs, revision: this.revision };
  }

  async put(
    key: string,
    value: Uint8Array,
    options: { lease?: LeaseId } = {},
  ): Promise<{ revision: number }> {
    const result = await this.txn(
      [],
      [{ op: "put", key, value, ...(options.lease === undefined ? {} : { lease: options.lease }) }],
    );
    return { revision: result.revision };
  }

  async delete(key: string): Promise<{ revision: number; deleted: boolean }> {
    this.open();
    const existed = this.kvs.has(key);
    const result = await this.txn([], [{ op: "delete", key }]);
    return { revision: result.revision, deleted: existed };
  }

  private holds(compare: Compare): boolean {
    const kv = this.kvs.get(compare.key);
    switch (compare.target) {
      case "mod":
        return (kv?.modRevision ?? 0) === compare.equals;
      case "create":
        return (kv?.createRevision ?? 0) === compare.equals;
      case "version":
        return (kv?.version ?? 0) === compare.equals;
      case "value":
        return kv !== undefined && equalBytes(kv.value, compare.equals);
    }
  }

  async txn(
    compares: readonly Compare[],
    success: readonly TxnOp[],
    failure: readonly TxnOp[] = [],
  ): Promise<TxnResult> {
    this.open();
    const succeeded = compares.every((c) => this.holds(c));
    const ops = succeeded ? success : failure;
    for (const op of ops) {
      if (op.op === "put" && op.lease !== undefined && !this.leases.has(op.lease)) {
        throw new StoreError("LEASE_LOST", `lease ${op.lease} does not exist`);
      }
    }
    const writes = ops.some((op) => op.op !== "get" && (op.op === "put" || this.kvs.has(op.key)));
    const revision = writes ? this.revision + 1 : this.revision;
    const gets: (KeyValue | undefined)[] = [];
    const events: WatchEvent[] = [];
    // Whether a key that outlives a restart (one not bound to a lease) is made, changed or removed.
    let durable = false;
    for (const op of ops) {
      if (op.op === "get") gets.push(this.kvs.get(op.key));
      else if (op.op === "put") {
        const old = this.kvs.get(op.key);
        durable ||= op.lease === undefined || (old !== undefined && old.lease === undefined);
        events.push(this.applyPut(op.key, op.value, op.lease, revision));
      } else {
        durable ||= this.kvs.get(op.key)?.lease === undefined && this.kvs.has(op.key);
        const removed = this.applyDelete(op.key, revision);
        if (removed !== undefined) events.push(removed);
      }
    }
    if (writes) {
      assert(revision > this.revision, "store revision went backwards");
      this.revision = revision;
      this.publish(events, revision);
      // Applied and published already; like etcd after a lost reply, a failed save leaves the
      // outcome unknown to the caller, who learns it from UNAVAILABLE and reads again.
      if (durable && this.persistPath !== undefined) await this.savedThrough(revision);
    }
    return { succeeded, revision: this.revision, gets };
  }

  /** Resolves once the file holds `revision` or later: one save at a time, each covering all before it. */
  private async savedThrough(revision: number): Promise<void> {
    const path = this.persistPath;
    assert(path !== undefined, "only a persistent store saves");
    while (this.savedRevision < revision) {
      if (this.saving !== undefined) {
        await this.saving.catch(() => undefined);
        continue;
      }
      const at = this.revision;
      const kvs = [...this.kvs.values()].filter((kv) => kv.lease === undefined);
      this.saving = writeStoreFile(path, { revision: at, kvs }).then(() => {
        assert(at >= this.savedRevision, "the saved revision never goes back");
        this.savedRevision = at;
      });
      try {
        await this.saving;
      } catch (error) {
        throw new StoreError("UNAVAILABLE", `could not save the store to ${path}: ${String(error)}`, {
          cause: error,
        });
      } finally {
        this.saving = undefined;
      }
    }
  }

  private applyPut(key: string, value: Uint8Array, lease: LeaseId | undefined, revision: number): WatchEvent {
    const old = this.kvs.get(key);
    if (old?.lease !== undefined) this.leases.get(old.lease)?.keys.delete(key);
    const kv: KeyValue = {
      key,
      value: value.slice(),
      createRevision: old?.createRevision ?? revision,
      modRevision: revision,
      version: (old?.version ?? 0) + 1,
      lease,
    };
    this.kvs.set(key, kv);
    if (lease !== undefined) this.leases.get(lease)?.keys.add(key);
    return { type: "put", kv };
  }

  private applyDelete(key: string, revision: number): WatchEvent | undefined {
    const old = this.kvs.get(key);
    if (old === undefined) return undefined;
    this.kvs.delete(key);
    if (old.lease !== undefined) this.leases.get(old.lease)?.keys.delete(key);
    return { type: "delete", key, revision };
  }

  private publish(events: readonly WatchEvent[], revision: number): void {
    for (const event of events) this.history.push({ revision, event });
    while (this.history.length > this.historyEventsMax)
      this.compactedRevision = this.history.shift()!.revision;
    for (const watcher of this.watchers) {
      for (const event of events) {
        const key = event.type === "put" ? event.kv.key : event.key;
        // Delivered after the call returns, so a watcher can never see a half-applied transaction.
        if (key.startsWith(watcher.prefix))
          queueMicrotask(() => this.watchers.has(watcher) && watcher.onEvent(event));
      }
    }
  }

  async watch(prefix: string, fromRevision: number, onEvent: (event: WatchEvent) => void): Promise<Watch> {
    this.open();
    if (fromRevision > 0 && fromRevision <= this.compactedRevision) {
      throw new StoreError(
        "COMPACTED",
        `revision ${fromRevision} is compacted (oldest kept: ${this.compactedRevision + 1})`,
      );
    }
    const watcher: Watcher = { prefix, onEvent };
    const past = fromRevision > 0 ? this.history.filter((h) => h.revision >= fromRevision) : [];
    this.watchers.add(watcher);
    for (const { event } of past) {
      const key = event.type === "put" ? event.kv.key : event.key;
      if (key.startsWith(prefix)) queueMicrotask(() => this.watchers.has(watcher) && onEvent(event));
    }
    const cancel = async (): Promise<void> => {
      this.watchers.delete(watcher);
    };
    return { cancel, [Symbol.asyncDispose]: cancel };
  }

  async grantLease(ttlMs: number): Promise<Lease> {
    this.open();
    if (!Number.isSafeInteger(ttlMs) || ttlMs < LEASE_TTL_MS_MIN) {
      throw new StoreError("INVALID", `lease TTL must be at least ${LEASE_TTL_MS_MIN} ms`);
    }
    const id = String(this.nextLease++);
    this.leases.set(id, { ttlMs, expiresAtMs: this.clock.monotonicMs() + ttlMs, keys: new Set() });
    return {
      id,
      ttlMs,
      keepAlive: async () => {
        this.open();
        const state = this.leases.get(id);
        if (state === undefined) throw new StoreError("LEASE_LOST", `lease ${id} expired or was revoked`);
        state.expiresAtMs = this.clock.monotonicMs() + state.ttlMs;
      },
      revoke: async () => {
        this.open();
        this.dropLease(id);
      },
    };
  }

  private dropLease(id: LeaseId): void {
    const state = this.leases.get(id);
    if (state === undefined) return;
    this.leases.delete(id);
    const keys = [...state.keys];
    if (keys.length > 0)
      void this.txn(
        [],
        keys.map((key) => ({ op: "delete" as const, key })),
      );
  }

  private expireLeases(): void {
    if (this.closed) return;
    const now = this.clock.monotonicMs();
    for (const [id, state] of this.leases) if (state.expiresAtMs <= now) this.dropLease(id);
  }

  async close(): Promise<void> {
    await this.saving?.catch(() => undefined);
    this.closed = true;
    this.leaseTimer[Symbol.dispose]();
    this.watchers.clear();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
