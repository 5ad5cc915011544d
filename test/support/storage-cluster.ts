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
    };
    this.members.set(serverId, member);
    await this.startMember(serverId, member);
  }

  private async startMember(serverId: string, member: Member): Promise<void> {
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
   * Stops a server the hard way: it stops answering and stops renewing its lease, so the cluster finds
   * out only when the lease runs out. `leave` instead revokes the lease at once.
   */
  async stopServer(serverId: string, how: "crash" | "leave" = "crash"): Promise<void> {
    const member = this.members.get(serverId);
    if (member?.server === undefined) throw new Error(`server ${serverId} is not running`);
    if (how === "crash") await member.membership?.abandon();
    else await member.membership?.close();
    await member.server.stop();
    member.server = undefined;
    member.membership = undefined;
  }

  async restartServer(serverId: string): Promise<void> {
    const member = this.members.get(serverId);
    if (member === undefined) throw new Error(`no server ${serverId}`);
    if (member.server !== undefined) await this.stopServer(serverId);
    await this.startMember(serverId, member);
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
    await Promise.allSettled([...this.devices].map((d) => d.close()));
    for (const [serverId, member] of this.members) {
      if (member.server !== undefined) await this.stopServer(serverId, "leave").catch(() => undefined);
    }
    await this.registry.close();
    if (this.ownsStore) await this.store.close();
    await rm(this.root, { recursive: true, force: true });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
