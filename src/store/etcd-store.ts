import { noop } from "cockatiel";
import {
  CompareResult,
  CompareTarget,
  Etcd3,
  EtcdLeaseInvalidError,
  GRPCOutOfRangeError,
  type ICompare,
  type IDuplexStream,
  type ILeaseKeepAliveRequest,
  type ILeaseKeepAliveResponse,
  type IRequestOp,
  type ITxnResponse,
  type KVClient,
} from "etcd3";
import { assert, unreachable } from "../util/assert.ts";
import { systemClock } from "../util/clock.ts";
import { EtcdKeys, toBuffer, toNumber } from "./etcd-codec.ts";
import { toStoreError } from "./etcd-errors.ts";
import { EtcdWatch } from "./etcd-watch.ts";
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
  type WatchOptions,
} from "./types.ts";

/** gRPC's per-call options (the deadline), as etcd3's clients take them. */
type CallOptions = NonNullable<Parameters<KVClient["range"]>[1]>;

/** How long one call may take before it fails UNAVAILABLE, unless `callTimeoutMs` says otherwise. */
export const CALL_TIMEOUT_MS_DEFAULT = 5000;
/** Keys read per request by `range`; more come in further pages at the same revision. */
const RANGE_PAGE_KEYS = 1000;
/**
 * gRPC retries a lost connection with exponential backoff; its default ceiling (120 s) would keep the
 * store failing UNAVAILABLE for up to two minutes after etcd is back.
 */
const RECONNECT_BACKOFF_MS_MAX = 1000;
/**
 * Pings on a connection with an open stream (a watch), so that an etcd that stopped answering
 * without closing the connection breaks its watches within this plus `callTimeoutMs`. etcd refuses
 * pings more often than every 5 s (`--grpc-keepalive-min-time`).
 */
const KEEPALIVE_PING_MS = 10_000;

export interface EtcdStoreOptions {
  /** Client URLs of the etcd members, e.g. `http://127.0.0.1:2379`. */
  readonly endpoints: readonly string[];
  /** Deadline of every call; a call to an etcd that does not answer fails UNAVAILABLE after it. */
  readonly callTimeoutMs?: number;
  /** Prefixed to every key in etcd and stripped from every key returned, so stores can share one etcd. */
  readonly namespace?: string;
}

/**
 * The coordination store on etcd (v3 API, through etcd3's gRPC client).
 *
 * Each call is one attempt with a deadline: etcd3's retries and circuit breaker are turned off, so a
 * dead etcd shows as StoreError UNAVAILABLE within `callTimeoutMs` and the caller decides whether to
 * retry (see `retryWithBackoff`). With several endpoints each call goes to one of them at random.
 *
 * Leases: etcd counts TTLs in whole seconds, so `grantLease(ttlMs)` asks for ttlMs rounded up to a
 * second (at least 1 s), and etcd may raise that to its own minimum (1.5 election timeouts, rounded
 * up: 2 s with etcd's default timing). The Lease's `ttlMs` is what etcd granted. Leases are never
 * kept alive behind the caller's back: the owner calls `keepAlive()` and learns of a loss from it.
 */
export class EtcdStore implements CoordinationStore {
  private readonly client: Etcd3;
  private readonly keys: EtcdKeys;
  private readonly callTimeoutMs: number;
  private readonly watches = new Set<EtcdWatch>();
  private closed = false;

  private constructor(client: Etcd3, keys: EtcdKeys, callTimeoutMs: number) {
    this.client = client;
    this.keys = keys;
    this.callTimeoutMs = callTimeoutMs;
  }

  /** A store on the etcd at `endpoints`, once one of them has answered (else UNAVAILABLE). */
  static async connect(options: EtcdStoreOptions): Promise<EtcdStore> {
    const callTimeoutMs = options.callTimeoutMs ?? CALL_TIMEOUT_MS_DEFAULT;
    if (options.endpoints.length === 0) throw new StoreError("INVALID", "no etcd endpoints given");
    if (!Number.isSafeInteger(callTimeoutMs) || callTimeoutMs <= 0) {
      throw new StoreError("INVALID", `callTimeoutMs must be a positive whole number, not ${callTimeoutMs}`);
    }
    const client = new Etcd3({
      hosts: [...options.endpoints],
      faultHandling: { host: () => noop, global: noop },
      grpcOptions: {
        "grpc.max_reconnect_backoff_ms": RECONNECT_BACKOFF_MS_MAX,
        "grpc.keepalive_time_ms": KEEPALIVE_PING_MS,
        "grpc.keepalive_timeout_ms": callTimeoutMs,
      },
    });
    const store = new EtcdStore(client, new EtcdKeys(options.namespace ?? ""), callTimeoutMs);
    try {
      await store.probe();
    } catch (error) {
      await store.close();
      throw error;
    }
    return store;
  }

  /** One cheap read, to learn that etcd answers. */
  private async probe(): Promise<void> {
    const range = { ...this.keys.range(""), limit: 1, count_only: true };
    await this.call("connect", (options) => this.client.kv.range(range, options));
  }

  private open(): void {
    if (this.closed) throw new StoreError("CLOSED", "the store is closed");
  }

  /** Runs one etcd call with the store's deadline, and turns its failure into a StoreError. */
  private async call<T>(what: string, run: (options: CallOptions) => Promise<T>): Promise<T> {
    this.open();
    const now = systemClock.now();
    const deadline = now.sec * 1000 + now.nsec / 1e6 + this.callTimeoutMs;
    try {
      return await run({ deadline });
    } catch (error) {
      if (this.closed) throw new StoreError("CLOSED", `${what}: the store was closed`, { cause: error });
      throw toStoreError(error, what);
    }
  }

  async get(key: string): Promise<KeyValue | undefined> {
    const response = await this.call(`get ${key}`, (options) =>
      this.client.kv.range({ key: this.keys.encode(key) }, options),
    );
    const kv = response.kvs[0];
    return kv === undefined ? undefined : this.keys.keyValue(kv);
  }

  async range(prefix: string): Promise<{ kvs: KeyValue[]; revision: number }> {
    const { key, range_end } = this.keys.range(prefix);
    const kvs: KeyValue[] = [];
    let revision = 0;
    for (let from = key; ; ) {
      // Every page after the first reads at the first one's revision: one consistent snapshot.
      const response = await this.call(`range ${prefix}`, (options) =>
        this.client.kv.range({ key: from, range_end, limit: RANGE_PAGE_KEYS, revision }, options),
      );
      if (revision === 0) revision = toNumber(response.header.revision, "revision");
      for (const kv of response.kvs) kvs.push(this.keys.keyValue(kv));
      const last = response.kvs.at(-1);
      if (!response.more || last === undefined) return { kvs, revision };
      from = Buffer.concat([last.key, Buffer.from([0])]);
    }
  }

  async put(
    key: string,
    value: Uint8Array,
    options: { lease?: LeaseId } = {},
  ): Promise<{ revision: number }> {
    const request = { key: this.keys.encode(key), value: toBuffer(value), lease: options.lease ?? 0 };
    const response = await this.call(`put ${key}`, (callOptions) => this.client.kv.put(request, callOptions));
    return { revision: toNumber(response.header.revision, "revision") };
  }

  async delete(key: string): Promise<{ revision: number; deleted: boolean }> {
    const response = await this.call(`delete ${key}`, (options) =>
      this.client.kv.deleteRange({ key: this.keys.encode(key) }, options),
    );
    return {
      revision: toNumber(response.header.revision, "revision"),
      deleted: toNumber(response.deleted, "deleted") > 0,
    };
  }

  async txn(
    compares: readonly Compare[],
    success: readonly TxnOp[],
    failure: readonly TxnOp[] = [],
  ): Promise<TxnResult> {
    const request = {
      compare: compares.map((compare) => this.toCompare(compare)),
      success: success.map((op) => this.toRequestOp(op)),
      failure: failure.map((op) => this.toRequestOp(op)),
    };
    const response = await this.call("txn", (options) => this.client.kv.txn(request, options));
    return this.toTxnResult(response, response.succeeded ? success : failure);
  }

  private toCompare(compare: Compare): ICompare {
    const base = { key: this.keys.encode(compare.key), result: CompareResult.Equal };
    switch (compare.target) {
      case "mod":
        return { ...base, target: CompareTarget.Mod, mod_revision: compare.equals };
      case "create":
        return { ...base, target: CompareTarget.Create, create_revision: compare.equals };
      case "version":
        return { ...base, target: CompareTarget.Version, version: compare.equals };
      case "value":
        return { ...base, target: CompareTarget.Value, value: toBuffer(compare.equals) };
      default:
        return unreachable(compare);
    }
  }

  private toRequestOp(op: TxnOp): IRequestOp {
    const key = this.keys.encode(op.key);
    switch (op.op) {
      case "put":
        return { request_put: { key, value: toBuffer(op.value), lease: op.lease ?? 0 } };
      case "delete":
        return { request_delete_range: { key } };
      case "get":
        return { request_range: { key } };
      default:
        return unreachable(op);
    }
  }

  private toTxnResult(response: ITxnResponse, ran: readonly TxnOp[]): TxnResult {
    assert(response.responses.length === ran.length, "etcd answered a txn with one result per op");
    const gets: (KeyValue | undefined)[] = [];
    ran.forEach((op, index) => {
      if (op.op !== "get") return;
      const range = response.responses[index]?.response_range;
      assert(range !== undefined && range !== null, `etcd answered txn get ${op.key} with no range`);
      const kv = range.kvs[0];
      gets.push(kv === undefined ? undefined : this.keys.keyValue(kv));
    });
    return {
      succeeded: response.succeeded,
      revision: toNumber(response.header.revision, "revision"),
      gets,
    };
  }

  async watch(
    prefix: string,
    fromRevision: number,
    onEvent: (event: WatchEvent) => void,
    options: WatchOptions = {},
  ): Promise<Watch> {
    this.open();
    if (!Number.isSafeInteger(fromRevision) || fromRevision < 0) {
      throw new StoreError("INVALID", `a watch starts at a revision >= 0, not ${fromRevision}`);
    }
    if (fromRevision > 0) await this.assertNotCompacted(prefix, fromRevision);
    const watch = await this.call(`watch ${prefix}`, () =>
      EtcdWatch.open(this.client.watchClient, this.keys, {
        prefix,
        fromRevision,
        onEvent,
        options,
        createMsMax: this.callTimeoutMs,
        onEnded: (ended) => this.watches.delete(ended),
      }),
    );
    if (this.closed) {
      await watch.cancel();
      throw new StoreError("CLOSED", `watch ${prefix}: the store was closed`);
    }
    this.watches.add(watch);
    return watch;
  }

  /**
   * Throws COMPACTED if `revision` is compacted away. etcd would accept the watch and cancel it a
   * moment later; reading at the revision first lets `watch` refuse it outright instead. etcd
   * refuses a read at a compacted and at a future revision alike (OUT_OF_RANGE), so the current
   * revision tells them apart. A compaction between this read and the watch still reaches the
   * caller, through `onError`.
   */
  private async assertNotCompacted(prefix: string, revision: number): Promise<void> {
    const range = { ...this.keys.range(prefix), limit: 1, keys_only: true };
    try {
      await this.call(`watch ${prefix}`, (options) => this.client.kv.range({ ...range, revision }, options));
      return;
    } catch (error) {
      if (!(error instanceof StoreError && error.cause instanceof GRPCOutOfRangeError)) throw error;
      // etcd says which: "required revision is a future revision" or "... has been compacted". A
      // future revision (nothing written since the caller's read) is what a follower asks for most.
      const text = error.cause.message;
      if (/future revision/i.test(text)) return;
      if (/compacted/i.test(text))
        throw new StoreError("COMPACTED", `watch ${prefix}: revision ${revision} is compacted`);
    }
    // Neither message: tell them apart by the current revision.
    const now = await this.call(`watch ${prefix}`, (options) => this.client.kv.range(range, options));
    if (revision > toNumber(now.header.revision, "revision")) return;
    throw new StoreError("COMPACTED", `watch ${prefix}: revision ${revision} is compacted`);
  }

  async grantLease(ttlMs: number): Promise<Lease> {
    if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0) {
      throw new StoreError("INVALID", `a lease TTL is a positive whole number of ms, not ${ttlMs}`);
    }
    const ttlSec = Math.max(1, Math.ceil(ttlMs / 1000));
    const response = await this.call("grant lease", (options) =>
      this.client.leaseClient.leaseGrant({ TTL: ttlSec }, options),
    );
    if (response.error !== "") throw new StoreError("INVALID", `grant lease: ${response.error}`);
    const id = response.ID;
    return {
      id,
      ttlMs: toNumber(response.TTL, "TTL") * 1000,
      keepAlive: () => this.keepAlive(id),
      revoke: () => this.revoke(id),
    };
  }

  /** One keep-alive round trip: etcd's answer carries the lease's new TTL, 0 if it has no such lease. */
  private async keepAlive(id: LeaseId): Promise<void> {
    const response = await this.call(`keep lease ${id} alive`, async (options) =>
      firstResponse(await this.client.leaseClient.leaseKeepAlive(options), { ID: id }),
    );
    if (toNumber(response.TTL, "TTL") <= 0) {
      throw new StoreError("LEASE_LOST", `lease ${id} expired or was revoked`);
    }
  }

  private async revoke(id: LeaseId): Promise<void> {
    try {
      await this.call(`revoke lease ${id}`, (options) =>
        this.client.leaseClient.leaseRevoke({ ID: id }, options),
      );
    } catch (error) {
      // Already gone (expired, or revoked before): what revoking wanted.
      if (!(error instanceof StoreError && error.cause instanceof EtcdLeaseInvalidError)) throw error;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.watches].map((watch) => watch.cancel()));
    this.client.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/**
 * Sends one keep-alive request on a fresh stream and resolves with etcd's answer. The call's deadline
 * bounds the wait; the stream is closed either way.
 */
function firstResponse(
  stream: IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse>,
  request: ILeaseKeepAliveRequest,
): Promise<ILeaseKeepAliveResponse> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      // Half-close before cancelling: etcd3 would take a cancelled, still-writable stream for a host failure.
      stream.end();
      stream.cancel();
      outcome();
    };
    stream.on("data", (response) => settle(() => resolve(response)));
    stream.on("error", (error) => settle(() => reject(error)));
    stream.on("end", () =>
      settle(() => reject(new StoreError("UNAVAILABLE", "etcd ended a keep-alive stream without answering"))),
    );
    stream.write(request);
  });
}
