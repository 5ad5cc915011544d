/**
 * A storage tier for tests, in this process: real storage servers on loopback TCP with their own data
 * directories, registered in a coordination store (embedded by default), and a registry whose clients
 * can be made to fail or stall (FaultyStorageClient) on the filer's side.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RemoteBlockDevice, type RemoteBlockDeviceOptions } from "../../src/block/remote-device.ts";
import { ClusterSecret } from "../../src/storage/auth.ts";
import { ChunkMover, type ChunkMoverOptions } from "../../src/storage/chunk-mover.ts";
import { ownerEpochs, StorageMembership } from "../../src/storage/membership.ts";
import { ServerRegistry } from "../../src/storage/server-registry.ts";
import { RemoteStorageClient } from "../../src/storage/storage-client.ts";
import { StorageServer } from "../../src/storage/storage-server.ts";
import { createVolume } from "../../src/storage/volumes.ts";
import { type CoordinationStore, EmbeddedStore } from "../../src/store/index.ts";
import { FaultyStorageClient } from "./faulty-storage-client.ts";

const GiB = 1024 * 1024 * 1024;

interface Member {
  readonly dataDir: string;
  readonly capacityBytes: number;
  server: StorageServer | undefined;
  membership: StorageMembership | undefined;
  /** The last stop, which a start waits for: two servers must never share a data directory. */
  stopped: Promise<void>;
}

export interface StorageClusterOptions {
  readonly servers?: number;
  readonly capacityBytes?: number;
  readonly leaseTtlMs?: number;
  readonly store?: CoordinationStore;
}

export class StorageTestCluster implements AsyncDisposable {
  readonly store: CoordinationStore;
  readonly secretBytes: Uint8Array;
  readonly secret: ClusterSecret;
  registry!: ServerRegistry;
  private readonly root: string;
  private readonly members = new Map<string, Member>();
  /** The filer-side client of each server, for fault injection. */
  private readonly clients = new Map<string, FaultyStorageClient>();
  private readonly devices = new Set<RemoteBlockDevice>();
  private readonly leaseTtlMs: number;
  private readonly ownsStore: boolean;
  /** Restarts under way, settled either way: close() waits for them before it stops the servers. */
  private readonly restarting = new Set<Promise<void>>();
  /** Restarts restartLater has scheduled and not begun: close() cancels them. */
  private readonly cancels = new Set<() => void>();
  private closing = false;

  private constructor(root: string, store: CoordinationStore, ownsStore: boolean, leaseTtlMs: number) {
    this.root = root;
    this.store = store;
    this.ownsStore = ownsStore;
    this.leaseTtlMs = leaseTtlMs;
    this.secretBytes = new Uint8Array(randomBytes(32));
    this.secret = new ClusterSecret(this.secretBytes);
  }

  static async start(options: StorageClusterOptions = {}): Promise<StorageTestCluster> {
    const root = await mkdtemp(join(tmpdir(), "flotilla-storage-"));
    const store = options.store ?? new EmbeddedStore();
    const cluster = new StorageTestCluster(
      root,
      store,
      options.store === undefined,
      options.leaseTtlMs ?? 2000,
    );
    cluster.registry = await ServerRegistry.open(store, (record) => {
      const client = new FaultyStorageClient(
        new RemoteStorageClient({
          serverId: record.serverId,
          host: record.host,
          port: record.port,
          secret: cluster.secret,
        }),
      );
      cluster.clients.set(record.serverId, client);
      return client;
    });
    for (let i = 0; i < (options.servers ?? 3); i++)
      await cluster.addServer(`s${i + 1}`, options.capacityBytes ?? 4 * GiB);
    return cluster;
  }

  serverIds(): string[] {
    return [...this.members.keys()];
  }

  dataDirOf(serverId: string): string {
    const member = this.members.get(serverId);
    if (member === undefined) throw new Error(`no server ${serverId}`);
    return member.dataDir;
  }

  /** The filer-side client of `serverId` (made on first use), to inject faults. */
  clientOf(serverId: string): FaultyStorageClient {
    this.registry.clientFor(serverId);
    const client = this.clients.get(serverId);
    if (client === undefined) throw new Error(`server ${serverId} is not registered`);
    return client;
  }

  serverOf(serverId: string): StorageServer {
    const server = this.members.get(serverId)?.server;
    if (server === undefined) throw new Error(`server ${serverId} is not running`);
    return server;
  }

  async addServer(serverId: string, capacityBytes = 4 * GiB): Promise<void> {
    const member: Member = {
      dataDir: join(this.root, serverId),
      capacityBytes,
      server: undefined,
      membership: undefined,
      stopped: Promise.resolve(),
    };
    this.members.set(serverId, member);
    await this.startMember(serverId, member);
  }

  private async startMember(serverId: string, member: Member): Promise<void> {
    await member.stopped.catch(() => undefined);
    const { epochs } = await ownerEpochs(this.store);
    const server = await StorageServer.start({
      serverId,
      dataDir: member.dataDir,
      secret: this.secretBytes,
      capacityBytes: member.capacityBytes,
      directory: this.registry,
      ownerEpochs: epochs,
    });
    member.server = server;
    member.membership = await StorageMembership.join(server, {
      store: this.store,
      leaseTtlMs: this.leaseTtlMs,
    });
    await this.untilRegistered(serverId, server.port);
  }

  private async untilRegistered(serverId: string, port: number): Promise<void> {
    for (let i = 0; i < 500; i++) {
      if (this.registry.addressOf(serverId)?.port === port) return;
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    throw new Error(`${serverId} did not show in the registry`);
  }

  /**
   * Stops a server the hard way, as a crash would: every connection is cut with the calls in flight
   * unanswered, its in-memory state (chunks filling) is gone, and it stops renewing its lease, so the
   * cluster finds out only when the lease runs out. `leave` instead lets the calls in flight finish
   * and revokes the lease at once.
   */
  async stopServer(serverId: string, how: "crash" | "leave" = "crash"): Promise<void> {
    const member = this.members.get(serverId);
    const server = member?.server;
    if (member === undefined || server === undefined) throw new Error(`server ${serverId} is not running`);
    // Forgotten at once, so close() never stops it twice; a start waits for this stop to end, so
    // no successor runs on its data directory meanwhile.
    member.server = undefined;
    const membership = member.membership;
    member.membership = undefined;
    member.stopped = (async () => {
      try {
        if (how === "crash") await membership?.abandon();
        else await membership?.close();
      } finally {
        await (how === "crash" ? server.abort() : server.stop());
      }
    })();
    await member.stopped;
  }

  /** Stops the server if it runs, and starts it again (on a new port). close() waits for it. */
  restartServer(serverId: string): Promise<void> {
    const member = this.members.get(serverId);
    if (member === undefined) return Promise.reject(new Error(`no server ${serverId}`));
    if (this.closing) return Promise.reject(new Error(`the cluster is closing: ${serverId} stays down`));
    const restart = (async () => {
      if (member.server !== undefined) await this.stopServer(serverId);
      await this.startMember(serverId, member);
    })();
    const settled = restart.then(
      () => undefined,
      () => undefined,
    );
    this.restarting.add(settled);
    void settled.finally(() => this.restarting.delete(settled));
    return restart;
  }

  /**
   * Restarts a server `delayMs` from now, off the caller's stack: a test hook running inside a move
   * must not hold that move (or race close()) with it. Resolves once restarted, or at once without
   * restarting if the cluster closes first.
   */
  restartLater(serverId: string, delayMs: number): Promise<void> {
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.cancels.delete(cancel);
        resolve(true);
      }, delayMs);
      const cancel = (): void => {
        clearTimeout(timer);
        resolve(false);
      };
      this.cancels.add(cancel);
    }).then((due) => (due && !this.closing ? this.restartServer(serverId) : undefined));
  }

  /** Waits until the store no longer lists `serverId` (its lease ran out). */
  async untilGone(serverId: string, timeoutMs = 20_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (this.registry.isAlive(serverId)) {
      if (performance.now() > deadline) throw new Error(`${serverId} still registered after ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  createVolume(volumeId: string, sizeBytes: number, replicationFactor?: number, chunkBlocks?: number) {
    return createVolume(this.store, this.registry, {
      volumeId,
      sizeBytes,
      ...(replicationFactor === undefined ? {} : { replicationFactor }),
      ...(chunkBlocks === undefined ? {} : { chunkBlocks }),
    });
  }

  /** Takes ownership of the volume (a new epoch) and opens a device on it, as a filer would. */
  async openDevice(
    volumeId: string,
    filerId = "filer-1",
    options: Partial<RemoteBlockDeviceOptions> = {},
  ): Promise<{ device: RemoteBlockDevice; epoch: number }> {
    const { device, epoch } = await RemoteBlockDevice.takeOver({
      store: this.store,
      servers: this.registry,
      volumeId,
      filerId,
      stallMaxMs: 20_000,
      ...options,
    });
    this.devices.add(device);
    return { device, epoch };
  }

  mover(options: Partial<ChunkMoverOptions> = {}): ChunkMover {
    return new ChunkMover({ store: this.store, servers: this.registry, ackTimeoutMs: 10_000, ...options });
  }

  async close(): Promise<void> {
    // A restart finishing after the loop below would leave its server listening, and the test
    // process alive: none begins from now on, and those under way end first.
    this.closing = true;
    for (const cancel of this.cancels) cancel();
    this.cancels.clear();
    await Promise.all(this.restarting);
    await Promise.allSettled([...this.devices].map((d) => d.close()));
    for (const [serverId, member] of this.members) {
      if (member.server !== undefined) await this.stopServer(serverId, "leave").catch(() => undefined);
      await member.stopped.catch(() => undefined);
    }
    await this.registry.close();
    if (this.ownsStore) await this.store.close();
    await rm(this.root, { recursive: true, force: true });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
