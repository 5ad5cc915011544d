/**
 * A node's membership: a lease it keeps alive and its health record under that lease. The cluster
 * sees the node die when the lease runs out; the node itself stops trusting the lease a little
 * before that (the watchdog below), so by the time the master moves its vservers, it has already
 * stopped serving them. After a loss it joins again with a new lease: to the master that is a node
 * that died and came back.
 */
import { type Logger, pino } from "pino";
import { type CoordinationStore, type Lease, StoreError } from "../store/index.ts";
import { type Clock, systemClock } from "../util/clock.ts";
import {
  clusterKeys,
  encodeRecord,
  type NodeRecord,
  nodeRecordSchema,
  nodeSettingsSchema,
} from "./catalog.ts";

export interface NodeMembershipOptions {
  readonly store: CoordinationStore;
  readonly nodeId: string;
  /** A node silent this long is dead to the cluster. */
  readonly leaseTtlMs: number;
  /** How often the lease is renewed; default a quarter of the TTL. */
  readonly keepAliveMs?: number;
  /** How often the health record is refreshed. */
  readonly healthIntervalMs?: number;
  /** The node's health, published under the lease. */
  readonly health: () => NodeRecord;
  /** The lease was lost (or can no longer be trusted): stop serving at once. */
  readonly onLost: () => void;
  /** A lease is held again after a loss (not called for the first join). */
  readonly onRejoined?: (lease: Lease) => void;
  readonly clock?: Clock;
  readonly logger?: Logger;
}

/** The node's own deadline is this share of the TTL after its last confirmed renewal. */
const TRUST_SHARE = 0.75;
const HEALTH_INTERVAL_MS_DEFAULT = 5000;

export class NodeMembership implements AsyncDisposable {
  private current: Lease | undefined;
  /** Monotonic time the last renewal was sent that then succeeded: the lease holds until then + TTL. */
  private confirmedAtMs = 0;
  private readonly timers: Disposable[] = [];
  private renewing = false;
  private closed = false;
  private readonly options: NodeMembershipOptions;
  private readonly clock: Clock;
  private readonly log: Logger;

  private constructor(options: NodeMembershipOptions) {
    this.options = options;
    this.clock = options.clock ?? systemClock;
    this.log = (options.logger ?? pino({ level: "silent" })).child({ component: "node-membership" });
  }

  /** Joins: settings made if the node is new (enabled), a lease granted, the health record put. */
  static async join(options: NodeMembershipOptions): Promise<NodeMembership> {
    const membership = new NodeMembership(options);
    const settingsKey = clusterKeys.nodeSettings(options.nodeId);
    await options.store.txn(
      [{ key: settingsKey, target: "create", equals: 0 }],
      [
        {
          op: "put",
          key: settingsKey,
          value: encodeRecord(nodeSettingsSchema, { operatorState: "enabled", changedAtMs: Date.now() }),
        },
      ],
    );
    await membership.register();
    const keepAliveMs = options.keepAliveMs ?? Math.max(50, Math.floor(options.leaseTtlMs / 4));
    membership.timers.push(membership.clock.every(keepAliveMs, () => membership.renew()));
    membership.timers.push(
      membership.clock.every(Math.max(20, Math.floor(keepAliveMs / 2)), () => membership.watchdog()),
    );
    membership.timers.push(
      membership.clock.every(options.healthIntervalMs ?? HEALTH_INTERVAL_MS_DEFAULT, () =>
        membership.publish(),
      ),
    );
    return membership;
  }

  /** The lease while it is held and trusted, else undefined. */
  get lease(): Lease | undefined {
    return this.current;
  }

  get held(): boolean {
    return this.current !== undefined;
  }

  private async register(): Promise<void> {
    const sentAtMs = this.clock.monotonicMs();
    const lease = await this.options.store.grantLease(this.options.leaseTtlMs);
    await this.options.store.put(
      clusterKeys.node(this.options.nodeId),
      encodeRecord(nodeRecordSchema, this.options.health()),
      { lease: lease.id },
    );
    this.confirmedAtMs = sentAtMs;
    this.current = lease;
    this.log.info({ leaseTtlMs: lease.ttlMs }, "joined");
  }

  private renew(): void {
    if (this.renewing || this.closed) return;
    this.renewing = true;
    const lease = this.current;
    const sentAtMs = this.clock.monotonicMs();
    const attempt =
      lease === undefined ? this.rejoin() : lease.keepAlive().then(() => this.confirm(lease, sentAtMs));
    attempt
      .catch((error: unknown) => {
        if (error instanceof StoreError && error.code === "LEASE_LOST")
          this.lose("the store says the lease is gone");
        else this.log.warn({ err: error }, "could not renew the lease");
      })
      .finally(() => {
        this.renewing = false;
      });
  }

  private confirm(lease: Lease, sentAtMs: number): void {
    if (this.current === lease) this.confirmedAtMs = Math.max(this.confirmedAtMs, sentAtMs);
  }

  private async rejoin(): Promise<void> {
    await this.register();
    if (this.closed) return;
    const lease = this.current;
    if (lease !== undefined) this.options.onRejoined?.(lease);
  }

  /** The lease cannot be trusted past TTL x TRUST_SHARE after its last confirmed renewal. */
  private watchdog(): void {
    const lease = this.current;
    if (lease === undefined || this.closed) return;
    const ageMs = this.clock.monotonicMs() - this.confirmedAtMs;
    if (ageMs > lease.ttlMs * TRUST_SHARE) this.lose(`no renewal confirmed for ${Math.round(ageMs)} ms`);
  }

  private lose(reason: string): void {
    if (this.current === undefined || this.closed) return;
    this.current = undefined;
    this.log.error({ reason }, "membership lease lost: this node stops serving");
    this.options.onLost();
  }

  /** Puts the health record now (it is also refreshed on a timer). */
  publish(): void {
    const lease = this.current;
    if (lease === undefined || this.closed) return;
    this.options.store
      .put(clusterKeys.node(this.options.nodeId), encodeRecord(nodeRecordSchema, this.options.health()), {
        lease: lease.id,
      })
      .catch((error: unknown) => this.log.warn({ err: error }, "could not publish health"));
  }

  /** Stops renewing without leaving: the cluster sees the node die when the lease runs out. */
  abandon(): void {
    this.closed = true;
    for (const timer of this.timers) timer[Symbol.dispose]();
    this.current = undefined;
  }

  /** Leaves the cluster at once: the lease is revoked, so the master acts without waiting. */
  async close(): Promise<void> {
    if (this.closed) return;
    const lease = this.current;
    this.abandon();
    await lease
      ?.revoke()
      .catch((error: unknown) => this.log.warn({ err: error }, "could not revoke the lease"));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
