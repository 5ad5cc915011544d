/**
 * The live view of registered storage servers (`storage/servers/`, each under its server's lease),
 * and one client per server. A server that restarts on another port is reached at its new address.
 */
import type { Logger } from "pino";
import { pino } from "pino";
import type { CoordinationStore, KeyValue, WatchEvent } from "../store/index.ts";
import { type Follower, followPrefix } from "../store/index.ts";
import {
  decodeRecord,
  lastKeyPart,
  SERVERS_PREFIX,
  type ServerRecord,
  serverRecordSchema,
} from "./catalog.ts";
import { RemoteStorageClient } from "./storage-client.ts";
import type { ServerDirectory, StorageClient } from "./types.ts";

export type StorageClientFactory = (record: ServerRecord) => StorageClient;

/** What the remote device and the movers need: a client for a server id, if it is registered. */
export interface StorageClientSource {
  clientFor(serverId: string): StorageClient | undefined;
}

interface Entry {
  readonly record: ServerRecord;
  client: StorageClient | undefined;
}

export class ServerRegistry implements ServerDirectory, StorageClientSource, AsyncDisposable {
  private readonly entries = new Map<string, Entry>();
  private readonly closing = new Set<StorageClient>();
  private follower: Follower | undefined;
  private readonly listeners = new Set<() => void>();

  private readonly makeClient: StorageClientFactory;
  private readonly log: Logger;

  private constructor(makeClient: StorageClientFactory, log: Logger) {
    this.makeClient = makeClient;
    this.log = log;
  }

  /** A registry whose clients are real storage clients authenticated with the cluster secret. */
  static openWithSecret(
    store: CoordinationStore,
    secret: Uint8Array,
    logger?: Logger,
  ): Promise<ServerRegistry> {
    return ServerRegistry.open(
      store,
      (record) =>
        new RemoteStorageClient({ serverId: record.serverId, host: record.host, port: record.port, secret }),
      logger,
    );
  }

  /** Loads the registered servers and follows changes until closed. */
  static async open(
    store: CoordinationStore,
    makeClient: StorageClientFactory,
    logger?: Logger,
  ): Promise<ServerRegistry> {
    const registry = new ServerRegistry(
      makeClient,
      (logger ?? pino({ level: "silent" })).child({ component: "server-registry" }),
    );
    registry.follower = await followPrefix(
      store,
      SERVERS_PREFIX,
      { onSnapshot: (kvs) => registry.resync(kvs), onEvent: (event) => registry.apply(event) },
      registry.log,
    );
    return registry;
  }

  /** The registered (alive) servers, in id order. */
  servers(): ServerRecord[] {
    return [...this.entries.values()].map((e) => e.record).sort((a, b) => (a.serverId < b.serverId ? -1 : 1));
  }

  isAlive(serverId: string): boolean {
    return this.entries.has(serverId);
  }

  addressOf(serverId: string): { readonly host: string; readonly port: number } | undefined {
    return this.entries.get(serverId)?.record;
  }

  clientFor(serverId: string): StorageClient | undefined {
    const entry = this.entries.get(serverId);
    if (entry === undefined) return undefined;
    entry.client ??= this.makeClient(entry.record);
    return entry.client;
  }

  /** Calls `listener` after every change of the set of servers or their addresses. */
  onChange(listener: () => void): Disposable {
    this.listeners.add(listener);
    return { [Symbol.dispose]: () => this.listeners.delete(listener) };
  }

  /** A fresh snapshot: servers missing from it have left. */
  private resync(kvs: readonly KeyValue[]): void {
    const present = new Set(kvs.map((kv) => lastKeyPart(kv.key)));
    for (const serverId of [...this.entries.keys()]) {
      if (!present.has(serverId))
        this.apply({ type: "delete", key: `${SERVERS_PREFIX}${serverId}`, revision: 0 });
    }
    for (const kv of kvs) this.apply({ type: "put", kv });
  }

  private apply(event: WatchEvent): void {
    if (event.type === "delete") {
      const serverId = lastKeyPart(event.key);
      const gone = this.entries.get(serverId);
      if (gone !== undefined) {
        this.retire(gone);
        this.entries.delete(serverId);
        this.log.info({ serverId }, "storage server left");
      }
    } else {
      let record: ServerRecord;
      try {
        record = decodeRecord(serverRecordSchema, event.kv.key, event.kv.value);
      } catch (error) {
        this.log.error({ err: error }, "ignoring a malformed server record");
        return;
      }
      const previous = this.entries.get(record.serverId);
      const moved =
        previous === undefined ||
        previous.record.host !== record.host ||
        previous.record.port !== record.port;
      if (previous !== undefined && moved) this.retire(previous);
      this.entries.set(record.serverId, { record, client: moved ? undefined : previous?.client });
      if (moved)
        this.log.info(
          { serverId: record.serverId, host: record.host, port: record.port },
          "storage server at",
        );
    }
    for (const listener of this.listeners) listener();
  }

  private retire(entry: Entry): void {
    // Calls in flight on the old address fail as UNAVAILABLE; their callers retry on the new client.
    const client = entry.client;
    if (client === undefined) return;
    this.closing.add(client);
    void Promise.resolve(client[Symbol.asyncDispose]())
      .catch((error: unknown) => this.log.debug({ err: error }, "closing a retired client failed"))
      .finally(() => this.closing.delete(client));
  }

  async close(): Promise<void> {
    await this.follower?.close();
    const clients = [...this.entries.values()].flatMap((e) => (e.client ? [e.client] : []));
    this.entries.clear();
    await Promise.allSettled([...clients, ...this.closing].map((c) => c[Symbol.asyncDispose]()));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
