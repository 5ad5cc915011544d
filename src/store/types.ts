/**
 * The coordination store: a versioned key-value store with compare-and-swap transactions, watches
 * and leases, as etcd offers. Two implementations (embedded, etcd) pass one contract suite.
 */

/** One key's current value and its history counters (etcd's mvccpb.KeyValue). */
export interface KeyValue {
  readonly key: string;
  readonly value: Uint8Array;
  /** Revision of the put that created the key (since it last did not exist). */
  readonly createRevision: number;
  /** Revision of the last put. */
  readonly modRevision: number;
  /** Puts since creation: 1 after the first. */
  readonly version: number;
  /** The lease the key is attached to, if any: it vanishes with the lease. */
  readonly lease: LeaseId | undefined;
}

export type LeaseId = string;

/** A condition of a transaction, on one key. A missing key has revisions and version 0. */
export type Compare =
  | { readonly key: string; readonly target: "mod"; readonly equals: number }
  | { readonly key: string; readonly target: "create"; readonly equals: number }
  | { readonly key: string; readonly target: "version"; readonly equals: number }
  | { readonly key: string; readonly target: "value"; readonly equals: Uint8Array };

export type TxnOp =
  | { readonly op: "put"; readonly key: string; readonly value: Uint8Array; readonly lease?: LeaseId }
  | { readonly op: "delete"; readonly key: string }
  | { readonly op: "get"; readonly key: string };

export interface TxnResult {
  readonly succeeded: boolean;
  /** The store's revision after the transaction. */
  readonly revision: number;
  /** For each `get` of the branch that ran, in order: the value, or undefined. */
  readonly gets: readonly (KeyValue | undefined)[];
}

export type WatchEvent =
  | { readonly type: "put"; readonly kv: KeyValue }
  | { readonly type: "delete"; readonly key: string; readonly revision: number };

export interface Watch extends AsyncDisposable {
  cancel(): Promise<void>;
}

export interface WatchOptions {
  /**
   * Called at most once, when the watch breaks without being cancelled: UNAVAILABLE when the store
   * can no longer be reached (or dropped the watch), COMPACTED when the store compacted away
   * revisions the watch had yet to deliver. No event follows; to go on, watch again from the
   * revision after the last event seen (and read afresh if that is COMPACTED). The embedded store's
   * watches never break.
   */
  readonly onError?: (error: StoreError) => void;
}

export interface Lease {
  readonly id: LeaseId;
  readonly ttlMs: number;
  /** Renews the lease; throws StoreError LEASE_LOST if it already expired or was revoked. */
  keepAlive(): Promise<void>;
  revoke(): Promise<void>;
}

export type StoreErrorCode =
  /** The store cannot be reached; the call may be retried with backoff. */
  | "UNAVAILABLE"
  /** The lease expired or was revoked: whatever it held is gone. */
  | "LEASE_LOST"
  /** A watch asked for a revision the store has already compacted away. */
  | "COMPACTED"
  /** The store was closed: every call after close() fails so. */
  | "CLOSED"
  /** The store refused the request itself (a bad argument, a malformed transaction): retrying will not help. */
  | "INVALID";

export class StoreError extends Error {
  override name = "StoreError";
  readonly code: StoreErrorCode;
  constructor(code: StoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

export interface CoordinationStore extends AsyncDisposable {
  get(key: string): Promise<KeyValue | undefined>;
  /** Every key that starts with `prefix`, in key order, with the revision they were read at. */
  range(prefix: string): Promise<{ readonly kvs: readonly KeyValue[]; readonly revision: number }>;
  put(
    key: string,
    value: Uint8Array,
    options?: { readonly lease?: LeaseId },
  ): Promise<{ readonly revision: number }>;
  delete(key: string): Promise<{ readonly revision: number; readonly deleted: boolean }>;
  /** Atomically: if every compare holds, run `success`, else `failure`. */
  txn(
    compares: readonly Compare[],
    success: readonly TxnOp[],
    failure?: readonly TxnOp[],
  ): Promise<TxnResult>;
  /**
   * Calls `onEvent` for every change to keys under `prefix` with a revision >= `fromRevision`
   * (past changes first, in revision order), until cancelled or broken (see `WatchOptions.onError`).
   * A `fromRevision` of 0 means "from now". Throws COMPACTED if `fromRevision` is compacted away.
   */
  watch(
    prefix: string,
    fromRevision: number,
    onEvent: (event: WatchEvent) => void,
    options?: WatchOptions,
  ): Promise<Watch>;
  grantLease(ttlMs: number): Promise<Lease>;
  close(): Promise<void>;
}
