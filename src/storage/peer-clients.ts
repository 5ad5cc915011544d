import { type Logger, pino } from "pino";
import { assert } from "../util/assert.ts";
import type { ClusterSecret } from "./auth.ts";
import { RemoteStorageClient } from "./storage-client.ts";
import { type ServerDirectory, StorageError } from "./types.ts";

/** Peers a server keeps a connection to at once (sources of copies); the least recently used goes. */
export const PEER_CLIENTS_MAX = 64;

export interface PeerClientsOptions {
  readonly directory: ServerDirectory;
  readonly secret: ClusterSecret;
  readonly clientsMax?: number;
  readonly callTimeoutMs?: number;
  readonly logger?: Logger;
}

/**
 * Clients of the other storage servers, found through the directory: one per server, replaced
 * when the directory moves the server to another address.
 */
export class PeerClients implements AsyncDisposable {
  private readonly clients = new Map<string, RemoteStorageClient>();
  private readonly options: PeerClientsOptions;
  private readonly clientsMax: number;
  private readonly log: Logger;
  private readonly retiring = new Set<Promise<void>>();

  constructor(options: PeerClientsOptions) {
    this.options = options;
    this.clientsMax = options.clientsMax ?? PEER_CLIENTS_MAX;
    assert(Number.isInteger(this.clientsMax) && this.clientsMax >= 1, "clientsMax >= 1");
    this.log = (options.logger ?? pino({ level: "silent" })).child({ component: "peer-clients" });
  }

  /** The client of `serverId`; UNAVAILABLE if the directory does not know it. */
  clientFor(serverId: string): RemoteStorageClient {
    const address = this.options.directory.addressOf(serverId);
    if (address === undefined)
      throw new StorageError("UNAVAILABLE", `storage server ${serverId} is not registered`);
    let client = this.clients.get(serverId);
    if (client !== undefined && (client.host !== address.host || client.port !== address.port)) {
      this.retire(serverId, client);
      client = undefined;
    }
    if (client === undefined) {
      client = new RemoteStorageClient({
        serverId,
        host: address.host,
        port: address.port,
        secret: this.options.secret,
        logger: this.log,
        ...(this.options.callTimeoutMs === undefined ? {} : { callTimeoutMs: this.options.callTimeoutMs }),
      });
    }
    // Most recently used goes last.
    this.clients.delete(serverId);
    this.clients.set(serverId, client);
    if (this.clients.size > this.clientsMax) {
      const [oldestId, oldest] = this.clients.entries().next().value ?? [];
      if (oldestId !== undefined && oldest !== undefined) this.retire(oldestId, oldest);
    }
    return client;
  }

  async close(): Promise<void> {
    for (const [serverId, client] of [...this.clients]) this.retire(serverId, client);
    await Promise.all(this.retiring);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private retire(serverId: string, client: RemoteStorageClient): void {
    this.clients.delete(serverId);
    // Calls in flight on it fail as UNAVAILABLE; their callers decide whether to ask again.
    const closing = client
      .close()
      .catch((error: unknown) => this.log.debug({ err: error }, "closing a peer client"));
    this.retiring.add(closing);
    void closing.finally(() => this.retiring.delete(closing));
  }
}
