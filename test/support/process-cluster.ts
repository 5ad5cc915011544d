/**
 * A cluster of processes for end-to-end tests: a real etcd, storage servers (`flotilla storage
 * serve --etcd`) and filer nodes (`flotilla node --config`), each its own process that a test can
 * kill -9, SIGSTOP and SIGCONT. The test itself talks to the store to make volumes and vservers and
 * to watch where they run.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type ClusterSnapshot, readClusterSnapshot } from "../../src/cluster/cluster-view.ts";
import { createVserver } from "../../src/cluster/desired-state.ts";
import { takeCensus } from "../../src/storage/chunk-census.ts";
import { readSecretFile, writeSecretFile } from "../../src/storage/secret-file.ts";
import { ServerRegistry } from "../../src/storage/server-registry.ts";
import { createVolume } from "../../src/storage/volumes.ts";
import { EtcdStore } from "../../src/store/index.ts";
import { type EtcdProcess, startEtcd } from "./etcd-process.ts";
import { type FlotillaProcess, spawnFlotilla } from "./flotilla-process.ts";
import { type StorageProcess, spawnStorageServer } from "./storage-process.ts";

const MiB = 1024 * 1024;

export interface ProcessClusterOptions {
  readonly root: string;
  readonly nodes: readonly string[];
  readonly storageServers: readonly string[];
  readonly leaseTtlMs: number;
  readonly logLevel?: string;
  /** Nodes are filers and storage servers both (no separate storage processes). */
  readonly hyperconverged?: boolean;
  /** How long a missing storage server waits past its lease before it is declared dead (default: the node's). */
  readonly storageGraceMs?: number;
  /** The nodes' liveMove config section (see flotilla node's config). */
  readonly liveMove?: {
    readonly precopyBytesPerSec?: number;
    readonly statePages?: number;
    readonly host?: string;
  };
  /**
   * For a cluster in a network lab: the host addresses etcd and the storage servers listen on, the
   * namespace each node runs in, and config sections added to each node's (its network, say).
   */
  readonly lab?: {
    readonly etcdHost: string;
    readonly storageHost: string;
    readonly namespaceOf: (nodeId: string) => string;
    readonly nodeConfig: (nodeId: string) => Record<string, unknown>;
  };
}

export class ProcessCluster implements AsyncDisposable {
  readonly nodes = new Map<string, FlotillaProcess | undefined>();
  readonly storage = new Map<string, StorageProcess>();
  etcd!: EtcdProcess;
  store!: EtcdStore;
  registry!: ServerRegistry;
  private readonly options: ProcessClusterOptions;
  private readonly namespace = "flotilla-e2e/";

  private constructor(options: ProcessClusterOptions) {
    this.options = options;
  }

  static async start(options: ProcessClusterOptions): Promise<ProcessCluster> {
    const cluster = new ProcessCluster(options);
    try {
      await cluster.startAll();
    } catch (error) {
      await cluster.close();
      throw error;
    }
    return cluster;
  }

  private get secretFile(): string {
    return join(this.options.root, "secret");
  }

  private async startAll(): Promise<void> {
    this.etcd = await startEtcd(this.options.lab?.etcdHost);
    await writeSecretFile(this.secretFile, true);
    const secret = await readSecretFile(this.secretFile);
    this.store = await EtcdStore.connect({ endpoints: [this.etcd.endpoint], namespace: this.namespace });
    this.registry = await ServerRegistry.openWithSecret(this.store, secret);
    for (const serverId of this.options.storageServers) {
      const server = await spawnStorageServer([
        "--data",
        join(this.options.root, "storage", serverId),
        "--id",
        serverId,
        ...(this.options.lab === undefined ? [] : ["--host", this.options.lab.storageHost]),
        "--secret-file",
        this.secretFile,
        "--etcd",
        this.etcd.endpoint,
        "--namespace",
        this.namespace,
        "--lease-ttl",
        String(this.options.leaseTtlMs),
      ]);
      this.storage.set(serverId, server);
    }
    for (const nodeId of this.options.nodes) await this.startNode(nodeId);
  }

  async startNode(nodeId: string): Promise<FlotillaProcess> {
    const config = {
      nodeId,
      roles: this.options.hyperconverged === true ? ["filer", "storage"] : ["filer"],
      etcd: [this.etcd.endpoint],
      namespace: this.namespace,
      secretFile: this.secretFile,
      dataDir: join(this.options.root, "nodes", nodeId),
      leaseTtlMs: this.options.leaseTtlMs,
      storageLeaseTtlMs: this.options.leaseTtlMs,
      ...(this.options.storageGraceMs === undefined ? {} : { storageGraceMs: this.options.storageGraceMs }),
      nodeSettleMs: 2000,
      moveCooldownMs: 1000,
      logLevel: this.options.logLevel ?? "info",
      admin: { port: 0 },
      ...(this.options.liveMove === undefined ? {} : { liveMove: this.options.liveMove }),
      ...this.options.lab?.nodeConfig(nodeId),
    };
    const configFile = join(this.options.root, `${nodeId}.json`);
    await writeFile(configFile, JSON.stringify(config));
    const node = await spawnFlotilla(
      ["node", "--config", configFile],
      /^node (\S+) up /m,
      `node ${nodeId}`,
      this.options.lab?.namespaceOf(nodeId),
    );
    this.nodes.set(nodeId, node);
    return node;
  }

  /** The admin API a running node serves, and its token file. */
  adminOf(nodeId: string): { url: string; tokenFile: string } {
    const match = /^admin API on (\S+) \(token in (\S+)\)/m.exec(this.node(nodeId).output());
    if (match === null) throw new Error(`node ${nodeId} printed no admin API line`);
    return { url: match[1] ?? "", tokenFile: match[2] ?? "" };
  }

  node(nodeId: string): FlotillaProcess {
    const node = this.nodes.get(nodeId);
    if (node === undefined) throw new Error(`node ${nodeId} is not running`);
    return node;
  }

  /** kill -9 of a node process; resolves once it is gone. */
  async killNode(nodeId: string): Promise<void> {
    const node = this.node(nodeId);
    this.nodes.set(nodeId, undefined);
    await node.stop("SIGKILL");
  }

  async createVserver(
    id: string,
    vips: string[],
    ports: { nfs: number; mount: number },
    sizeBytes = 64 * MiB,
    exports?: readonly string[],
  ): Promise<void> {
    const volumeId = `${id}-data`;
    await createVolume(this.store, this.registry, {
      volumeId,
      sizeBytes,
      replicationFactor: 2,
      chunkBlocks: 1024,
    });
    await createVserver(this.store, {
      id,
      vips,
      volumes: [volumeId],
      nfsPort: ports.nfs,
      mountPort: ports.mount,
      ...(exports === undefined ? {} : { exports }),
    });
  }

  snapshot(): Promise<ClusterSnapshot> {
    return readClusterSnapshot(this.store);
  }

  /** The node serving the vserver at its current placement (optionally: not `notOn`), once it does. */
  async servedBy(vserverId: string, notOn?: string, timeoutMs = 30_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const snapshot = await this.snapshot().catch(() => undefined);
      const placement = snapshot?.placements.get(vserverId)?.record;
      const running = snapshot?.running.get(vserverId);
      if (
        placement !== undefined &&
        running !== undefined &&
        running.nodeId === placement.node &&
        running.generation === placement.generation &&
        running.nodeId !== notOn
      )
        return running.nodeId;
      if (Date.now() > deadline) {
        const outputs = [...this.nodes].map(
          ([id, n]) => `--- ${id}\n${n?.output().slice(-3000) ?? "(not running)"}`,
        );
        throw new Error(
          `${vserverId} is not served${notOn === undefined ? "" : ` off ${notOn}`} after ${timeoutMs} ms\n${outputs.join("\n")}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  /**
   * Waits until the storage tier has healed: no server marked dead, every chunk with as many active
   * replicas as its volume asks for. A second failure before that is a double failure.
   */
  async untilStorageHealthy(timeoutMs = 180_000): Promise<number> {
    const started = Date.now();
    for (;;) {
      const census = await takeCensus(this.store).catch(() => undefined);
      const healthy =
        census !== undefined &&
        census.dead.size === 0 &&
        census.moving.size === 0 &&
        census.chunks.every(
          (c) => c.route.replicas.filter((r) => r.state === "active").length >= c.volume.replicationFactor,
        );
      if (healthy) return Date.now() - started;
      if (Date.now() - started > timeoutMs)
        throw new Error(`the storage tier did not heal in ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.nodes.values()].map((n) => n?.[Symbol.asyncDispose]()));
    await Promise.allSettled([...this.storage.values()].map((s) => s[Symbol.asyncDispose]()));
    await this.registry?.close();
    await this.store?.close();
    await this.etcd?.[Symbol.asyncDispose]();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
