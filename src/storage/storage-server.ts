/**
 * A storage server: the chunk store, owner epochs and the storage protocol on one TCP port.
 *
 * The data directory holds:
 *   server-id                      the id the directory belongs to (a start under another id is refused)
 *   epochs/<volumeId>.epoch        the highest owner epoch seen per volume (epoch-store.ts)
 *   volumes/<volumeId>/<n>.chunk   chunk files (chunk-format.ts)
 */

import { mkdir, readFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { type Logger, pino } from "pino";
import { RpcServer } from "../rpc/server.ts";
import { ClusterSecret, ServerAuthenticator } from "./auth.ts";
import { BackgroundGate, type BackgroundGateLimits } from "./background-gate.ts";
import type { ServerLoadRecord } from "./catalog.ts";
import { ChunkStore } from "./chunk-store.ts";
import { replaceFile } from "./durable-file.ts";
import { EpochStore } from "./epoch-store.ts";
import { PeerClients } from "./peer-clients.ts";
import { ServerCounters, type StorageServerHooks, storageProgram } from "./storage-program.ts";
import { SERVER_ID_PATTERN, type ServerDirectory, type ServerStats, VOLUME_ID_PATTERN } from "./types.ts";

export interface StorageServerOptions {
  readonly serverId: string;
  readonly dataDir: string;
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** Default 0: any free port. */
  readonly port?: number;
  /** The cluster secret, 32 bytes or more. */
  readonly secret: Uint8Array;
  readonly capacityBytes: number;
  /** Where the other storage servers are (the sources of copies). */
  readonly directory: ServerDirectory;
  readonly logger?: Logger;
  /**
   * Owner epochs to raise before the server accepts a connection: what the coordination store
   * says, so that a server that was down while a volume changed hands cannot serve its old owner.
   */
  readonly ownerEpochs?: Iterable<readonly [volumeId: string, epoch: number]>;
  /** Chunk files open at once (default 256). */
  readonly openFilesMax?: number;
  /** How background work (copies, a move's steps) yields to clients; BACKGROUND_GATE_DEFAULTS if unset. */
  readonly backgroundGate?: Partial<BackgroundGateLimits>;
  /** Tests only. */
  readonly hooks?: StorageServerHooks;
  /** Tests only: see ChunkStoreOptions.unsafeIgnoreFreshBlocks. */
  readonly unsafeIgnoreFreshBlocks?: boolean;
}

const SERVER_ID_FILE = "server-id";

export class StorageServer implements AsyncDisposable {
  readonly serverId: string;
  /** The address bound. */
  readonly host: string;
  readonly port: number;
  private readonly capacityBytes: number;
  private readonly startedAtMs = performance.now();
  private lastLoadSample:
    | { atMs: number; network: { in: number; out: number }; cpuMicros: number }
    | undefined;
  private readonly rpc: RpcServer;
  private readonly store: ChunkStore;
  private readonly epochs: EpochStore;
  private readonly peers: PeerClients;
  private readonly auth: ServerAuthenticator;
  private readonly counters: ServerCounters;
  private readonly log: Logger;
  private stopping: Promise<void> | undefined;

  private constructor(fields: {
    serverId: string;
    host: string;
    port: number;
    capacityBytes: number;
    rpc: RpcServer;
    store: ChunkStore;
    epochs: EpochStore;
    peers: PeerClients;
    auth: ServerAuthenticator;
    counters: ServerCounters;
    log: Logger;
  }) {
    this.serverId = fields.serverId;
    this.host = fields.host;
    this.port = fields.port;
    this.capacityBytes = fields.capacityBytes;
    this.rpc = fields.rpc;
    this.store = fields.store;
    this.epochs = fields.epochs;
    this.peers = fields.peers;
    this.auth = fields.auth;
    this.counters = fields.counters;
    this.log = fields.log;
  }

  static async start(options: StorageServerOptions): Promise<StorageServer> {
    const { serverId, dataDir } = options;
    if (!SERVER_ID_PATTERN.test(serverId)) {
      throw new RangeError(`storage server id "${serverId}" must match ${SERVER_ID_PATTERN.source}`);
    }
    if (!Number.isSafeInteger(options.capacityBytes) || options.capacityBytes < 0) {
      throw new RangeError(`capacity ${options.capacityBytes} is not a byte count`);
    }
    const secret = new ClusterSecret(options.secret);
    const log = (options.logger ?? pino({ level: "silent" })).child({ serverId });
    await mkdir(dataDir, { recursive: true });
    await claimDataDir(dataDir, serverId);
    const epochs = await EpochStore.open(join(dataDir, "epochs"), log);
    for (const [volumeId, epoch] of options.ownerEpochs ?? []) {
      if (!VOLUME_ID_PATTERN.test(volumeId)) throw new RangeError(`"${volumeId}" is not a volume id`);
      await epochs.raise(volumeId, epoch);
    }
    const store = await ChunkStore.open({
      dir: join(dataDir, "volumes"),
      logger: log,
      ...(options.openFilesMax === undefined ? {} : { openFilesMax: options.openFilesMax }),
      ...(options.unsafeIgnoreFreshBlocks === undefined
        ? {}
        : { unsafeIgnoreFreshBlocks: options.unsafeIgnoreFreshBlocks }),
    });
    const auth = new ServerAuthenticator(secret, serverId);
    const peers = new PeerClients({ directory: options.directory, secret, logger: log });
    const counters = new ServerCounters(new BackgroundGate(options.backgroundGate));
    const stats = () => statsOf(serverId, options.capacityBytes, store, counters);
    const program = storageProgram({
      serverId,
      store,
      epochs,
      auth,
      peers,
      counters,
      stats,
      logger: log,
      ...(options.hooks === undefined ? {} : { hooks: options.hooks }),
    });
    const rpc = new RpcServer({
      name: "storage",
      logger: log,
      programs: [program],
      onConnectionClosed: (connectionId) => auth.forget(connectionId),
    });
    let bound: { address: string; port: number };
    try {
      bound = await rpc.listen(options.host ?? "127.0.0.1", options.port ?? 0);
    } catch (error) {
      await store.close();
      throw error;
    }
    const server = new StorageServer({
      serverId,
      host: bound.address,
      port: bound.port,
      capacityBytes: options.capacityBytes,
      rpc,
      store,
      epochs,
      peers,
      auth,
      counters,
      log,
    });
    log.info(
      { host: bound.address, port: bound.port, chunkCount: store.chunkCount },
      "storage server started",
    );
    return server;
  }

  stats(): ServerStats {
    return statsOf(this.serverId, this.capacityBytes, this.store, this.counters);
  }

  /**
   * Its load as published for the balancer: the monitor's rates, and network and CPU as rates over
   * the time since the previous call (the first call measures from the start).
   */
  loadRecord(): ServerLoadRecord {
    const now = performance.now();
    const network = this.rpc.networkBytes();
    const cpu = process.cpuUsage();
    const previous = this.lastLoadSample ?? {
      atMs: this.startedAtMs,
      network: { in: 0, out: 0 },
      cpuMicros: 0,
    };
    const seconds = Math.max(0.001, (now - previous.atMs) / 1000);
    const cpuMicros = cpu.user + cpu.system;
    this.lastLoadSample = { atMs: now, network, cpuMicros };
    const report = this.counters.load.report();
    return {
      serverId: this.serverId,
      atMs: Date.now(),
      requestsPerSec: report.requestsPerSec,
      readBytesPerSec: report.readBytesPerSec,
      writeBytesPerSec: report.writeBytesPerSec,
      latencyP50Ms: report.latencyP50Ms,
      latencyP99Ms: report.latencyP99Ms,
      sequentialShare: report.sequentialShare,
      readShare: report.readShare,
      requestsInFlight: this.counters.requestsInFlight,
      cpuBusy: Math.min(
        1,
        (cpuMicros - previous.cpuMicros) / 1e6 / seconds / Math.max(1, availableParallelism()),
      ),
      networkInBytesPerSec: Math.max(0, network.in - previous.network.in) / seconds,
      networkOutBytesPerSec: Math.max(0, network.out - previous.network.out) / seconds,
      capacityBytes: this.capacityBytes,
      usedBytes: this.store.usedBytes,
      hotChunks: [...report.hotChunks],
    };
  }

  /** Client connections open. */
  get connectionCount(): number {
    return this.rpc.connectionCount;
  }

  /** Connections the server keeps handshake state for (bounded; dropped as connections close). */
  get authStateCount(): number {
    return this.auth.connectionCount;
  }

  /** Raises the volume's owner epoch (persisted) to at least `epoch`; a lower one changes nothing. */
  raiseEpoch(volumeId: string, epoch: number): Promise<void> {
    return this.epochs.raise(volumeId, epoch);
  }

  /** The highest owner epoch persisted for the volume (0 if none). */
  ownerEpoch(volumeId: string): number {
    return this.epochs.current(volumeId);
  }

  /** Stops taking connections, lets the requests in flight finish, then syncs and closes every file. */
  stop(): Promise<void> {
    this.stopping ??= this.stopNow();
    return this.stopping;
  }

  /** Stops as a crash would for its clients: every connection cut, requests in flight unanswered. */
  abort(): Promise<void> {
    this.stopping ??= (async () => {
      await this.rpc.abort();
      await this.peers.close();
      await this.store.close();
      this.log.warn("storage server aborted");
    })();
    return this.stopping;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  private async stopNow(): Promise<void> {
    await this.rpc.close();
    await this.peers.close();
    await this.store.close();
    this.log.info("storage server stopped");
  }
}

function statsOf(
  serverId: string,
  capacityBytes: number,
  store: ChunkStore,
  counters: ServerCounters,
): ServerStats {
  const { readBytes, writtenBytes, requestsInFlight } = counters;
  return {
    serverId,
    capacityBytes,
    usedBytes: store.usedBytes,
    chunkCount: store.chunkCount,
    readBytes,
    writtenBytes,
    requestsInFlight,
  };
}

/** Records the server's id in a new data directory, or refuses one that belongs to another server. */
async function claimDataDir(dataDir: string, serverId: string): Promise<void> {
  const path = join(dataDir, SERVER_ID_FILE);
  let recorded: string | undefined;
  try {
    recorded = (await readFile(path, "utf8")).trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  if (recorded === undefined) {
    await replaceFile(path, [{ bytes: new TextEncoder().encode(`${serverId}\n`), position: 0 }]);
  } else if (recorded !== serverId) {
    throw new Error(`${dataDir} belongs to storage server "${recorded}", not "${serverId}"`);
  }
}
