/**
 * A storage server's place in the cluster: it learns every volume's owner epoch from the store before
 * it serves (so an old owner cannot write to a server that was down while the volume changed hands),
 * follows later changes, and registers itself under a lease it keeps alive.
 */
import { type Logger, pino } from "pino";
import {
  type CoordinationStore,
  type Follower,
  followPrefix,
  type Lease,
  StoreError,
  type WatchEvent,
} from "../store/index.ts";
import { type Clock, systemClock } from "../util/clock.ts";
import {
  decodeRecord,
  encodeRecord,
  keys,
  lastKeyPart,
  OWNERS_PREFIX,
  ownerRecordSchema,
  type ServerLoadRecord,
  type ServerRecord,
  serverLoadSchema,
  serverRecordSchema,
} from "./catalog.ts";
import type { ServerStats } from "./types.ts";

/** What membership needs of a running storage server. */
export interface MemberServer {
  readonly serverId: string;
  readonly host: string;
  readonly port: number;
  stats(): Promise<ServerStats> | ServerStats;
  /** Its load for the balancer; a server without one publishes none. */
  loadRecord?(): ServerLoadRecord;
  raiseEpoch(volumeId: string, epoch: number): Promise<void>;
}

export interface MembershipOptions {
  readonly store: CoordinationStore;
  /** Lease time to live: a server silent this long is no longer registered. */
  readonly leaseTtlMs?: number;
  readonly clock?: Clock;
  readonly logger?: Logger;
}

export const STORAGE_LEASE_TTL_MS_DEFAULT = 3000;
/** How often a server publishes its load: the store sees one small write per server this often. */
export const LOAD_PUBLISH_MS = 2000;

/** Reads every volume's owner epoch: apply these to a server before it starts serving. */
export async function ownerEpochs(
  store: CoordinationStore,
): Promise<{ epochs: Map<string, number>; revision: number }> {
  const { kvs, revision } = await store.range(OWNERS_PREFIX);
  const epochs = new Map<string, number>();
  for (const kv of kvs)
    epochs.set(lastKeyPart(kv.key), decodeRecord(ownerRecordSchema, kv.key, kv.value).epoch);
  return { epochs, revision };
}

export class StorageMembership implements AsyncDisposable {
  private lease: Lease | undefined;
  private owners: Follower | undefined;
  private timer: Disposable | undefined;
  private loadTimer: Disposable | undefined;
  private publishing = false;
  private renewing = false;
  private closed = false;
  private readonly log: Logger;
  private readonly ttlMs: number;
  private readonly server: MemberServer;
  private readonly store: CoordinationStore;
  private readonly clock: Clock;

  private constructor(server: MemberServer, options: MembershipOptions) {
    this.server = server;
    this.store = options.store;
    this.clock = options.clock ?? systemClock;
    this.ttlMs = options.leaseTtlMs ?? STORAGE_LEASE_TTL_MS_DEFAULT;
    this.log = (options.logger ?? pino({ level: "silent" })).child({
      component: "storage-membership",
      serverId: server.serverId,
    });
  }

  /**
   * Follows owner epochs (the server was started with the `ownerEpochs` read before; a snapshot
   * taken now catches anything since), then registers the server and keeps its lease alive.
   */
  static async join(server: MemberServer, options: MembershipOptions): Promise<StorageMembership> {
    const membership = new StorageMembership(server, options);
    membership.owners = await followPrefix(
      options.store,
      OWNERS_PREFIX,
      {
        onSnapshot: (kvs) => {
          for (const kv of kvs) membership.onOwner({ type: "put", kv });
        },
        onEvent: (event) => membership.onOwner(event),
      },
      membership.log,
    );
    await membership.register();
    if (server.loadRecord !== undefined)
      membership.loadTimer = membership.clock.every(LOAD_PUBLISH_MS, () => membership.publishLoad());
    membership.timer = membership.clock.every(Math.max(1, Math.floor(membership.ttlMs / 3)), () =>
      membership.renew(),
    );
    return membership;
  }

  private onOwner(event: WatchEvent): void {
    if (event.type !== "put") return;
    let epoch: number;
    try {
      epoch = decodeRecord(ownerRecordSchema, event.kv.key, event.kv.value).epoch;
    } catch (error) {
      this.log.error({ err: error }, "ignoring a malformed owner record");
      return;
    }
    const volumeId = lastKeyPart(event.kv.key);
    this.server.raiseEpoch(volumeId, epoch).catch((error: unknown) => {
      this.log.error({ err: error, volumeId, epoch }, "could not raise a volume's owner epoch");
    });
  }

  /** Writes the server's load under its lease; skipped while the last write is still going. */
  private publishLoad(): void {
    const lease = this.lease;
    const record = this.server.loadRecord?.();
    if (this.publishing || this.closed || lease === undefined || record === undefined) return;
    this.publishing = true;
    this.store
      .put(keys.load(this.server.serverId), encodeRecord(serverLoadSchema, record), { lease: lease.id })
      .catch((error: unknown) => this.log.debug({ err: error }, "could not publish the load"))
      .finally(() => {
        this.publishing = false;
      });
  }

  private async record(): Promise<ServerRecord> {
    const stats = await this.server.stats();
    return {
      serverId: this.server.serverId,
      host: this.server.host,
      port: this.server.port,
      capacityBytes: stats.capacityBytes,
      usedBytes: stats.usedBytes,
    };
  }

  private async register(): Promise<void> {
    const lease = await this.store.grantLease(this.ttlMs);
    this.lease = lease;
    await this.store.put(
      keys.server(this.server.serverId),
      encodeRecord(serverRecordSchema, await this.record()),
      {
        lease: lease.id,
      },
    );
    this.log.info({ ttlMs: this.ttlMs }, "registered");
  }

  private renew(): void {
    if (this.renewing || this.closed) return;
    this.renewing = true;
    const lease = this.lease;
    (lease === undefined ? this.register() : lease.keepAlive())
      .catch(async (error: unknown) => {
        if (error instanceof StoreError && error.code === "LEASE_LOST") {
          // Our registration vanished: we look dead to the cluster until we register again.
          this.log.warn("lease lost; registering again");
          this.lease = undefined;
          await this.register();
          return;
        }
        throw error;
      })
      .catch((error: unknown) => this.log.warn({ err: error }, "could not renew registration"))
      .finally(() => {
        this.renewing = false;
      });
  }

  /** Stops renewing without leaving: the cluster sees this server die when its lease runs out. */
  async abandon(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.timer?.[Symbol.dispose]();
    this.loadTimer?.[Symbol.dispose]();
    await this.owners?.close();
  }

  /** Leaves the cluster: the registration goes at once, not after the lease runs out. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.timer?.[Symbol.dispose]();
    this.loadTimer?.[Symbol.dispose]();
    await this.owners?.close();
    await this.lease?.revoke().catch(() => undefined);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
