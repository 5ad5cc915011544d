import { assert } from "../../util/assert.ts";
import { type Clock, systemClock } from "../../util/clock.ts";
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

  constructor(options: { clock?: Clock; historyEventsMax?: number } = {}) {
    this.clock = options.clock ?? systemClock;
    this.historyEventsMax = options.historyEventsMax ?? HISTORY_EVENTS_MAX;
    this.leaseTimer = this.clock.every(LEASE_CHECK_INTERVAL_MS, () => this.expireLeases());
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
    for (const op of ops) {
      if (op.op === "get") gets.push(this.kvs.get(op.key));
      else if (op.op === "put") events.push(this.applyPut(op.key, op.value, op.lease, revision));
      else {
        const removed = this.applyDelete(op.key, revision);
        if (removed !== undefined) events.push(removed);
      }
    }
    if (writes) {
      assert(revision > this.revision, "store revision went backwards");
      this.revision = revision;
      this.publish(events, revision);
    }
    return { succeeded, revision: this.revision, gets };
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
    this.closed = true;
    this.leaseTimer[Symbol.dispose]();
    this.watchers.clear();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
