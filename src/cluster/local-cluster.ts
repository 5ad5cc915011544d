/**
 * A whole cluster in one process, on one coordination store: several nodes, each with its storage
 * server on loopback and its agent serving vservers on loopback VIPs. What `flotilla cluster up`
 * (and so `npm start`) runs, and what the in-process cluster tests drive. Nodes can be killed (as a
 * crash: sockets cut, nothing flushed or released) and started again from their data directories.
 */
import { access, mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "pino";
import type { ProcedureMetrics } from "../nfs/metrics.ts";
import { readSecretFile, writeSecretFile } from "../storage/secret-file.ts";
import { ServerRegistry } from "../storage/server-registry.ts";
import type { CoordinationStore } from "../store/index.ts";
import type { PlannerPolicy } from "./model.ts";
import { NodeRuntime } from "./node-runtime.ts";

export interface LocalClusterOptions {
  readonly dataDir: string;
  readonly store: CoordinationStore;
  readonly nodeIds: readonly string[];
  readonly leaseTtlMs: number;
  readonly storageLeaseTtlMs: number;
  readonly storageGraceMs: number;
  /** See NodeRuntimeOptions.takeoverGraceMs: how long a new master waits for nodes it has not seen yet. */
  readonly takeoverGraceMs?: number;
  /** Space each node's storage server offers. */
  readonly capacityBytes: number;
  readonly policy?: PlannerPolicy;
  /** Service-state pages per node, where not the default (a small one refuses live moves in). */
  readonly statePagesMaxByNode?: Readonly<Record<string, number>>;
  /** Where every node's vservers count their NFS calls: one place for the whole process. */
  readonly nfsMetrics?: (vserverId: string) => ProcedureMetrics;
  readonly logger: Logger;
}

export class LocalCluster implements AsyncDisposable {
  readonly store: CoordinationStore;
  /** A registry of storage servers for operator work (volume create and delete). */
  registry!: ServerRegistry;
  secret!: Uint8Array;
  private readonly nodes = new Map<string, NodeRuntime | undefined>();
  private readonly options: LocalClusterOptions;

  private constructor(options: LocalClusterOptions) {
    this.options = options;
    this.store = options.store;
  }

  static async start(options: LocalClusterOptions): Promise<LocalCluster> {
    const cluster = new LocalCluster(options);
    await mkdir(options.dataDir, { recursive: true });
    const secretFile = join(options.dataDir, "secret");
    if (!(await exists(secretFile))) await writeSecretFile(secretFile, false);
    cluster.secret = await readSecretFile(secretFile);
    const secret = cluster.secret;
    cluster.registry = await ServerRegistry.openWithSecret(options.store, secret, options.logger);
    try {
      // Storage servers first, all of them, so the filers find every replica when they start.
      for (const nodeId of options.nodeIds) await cluster.startNode(nodeId);
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  get nodeIds(): readonly string[] {
    return this.options.nodeIds;
  }

  node(nodeId: string): NodeRuntime | undefined {
    return this.nodes.get(nodeId);
  }

  /** Starts a node (again): its storage server on its data directory, its lease, its agent. */
  async startNode(nodeId: string): Promise<NodeRuntime> {
    if (!this.options.nodeIds.includes(nodeId)) throw new Error(`no node ${nodeId} in this cluster`);
    if (this.nodes.get(nodeId) !== undefined) throw new Error(`node ${nodeId} is already running`);
    const node = await NodeRuntime.start({
      store: this.store,
      nodeId,
      roles: ["filer", "storage"],
      secret: this.secret,
      storage: {
        dataDir: join(this.options.dataDir, "nodes", nodeId, "storage"),
        host: "127.0.0.1",
        port: 0,
        capacityBytes: this.options.capacityBytes,
        leaseTtlMs: this.options.storageLeaseTtlMs,
      },
      leaseTtlMs: this.options.leaseTtlMs,
      vserversMax: 64,
      storageGraceMs: this.options.storageGraceMs,
      ...(this.options.takeoverGraceMs === undefined
        ? {}
        : { takeoverGraceMs: this.options.takeoverGraceMs }),
      ...(this.options.policy === undefined ? {} : { policy: this.options.policy }),
      ...(this.options.nfsMetrics === undefined ? {} : { nfsMetrics: this.options.nfsMetrics }),
      ...(this.options.statePagesMaxByNode?.[nodeId] === undefined
        ? {}
        : { statePagesMax: this.options.statePagesMaxByNode[nodeId] }),
      logger: this.options.logger,
    });
    this.nodes.set(nodeId, node);
    return node;
  }

  /** A crash of one node: its sockets are cut and nothing is flushed or released. */
  async killNode(nodeId: string): Promise<void> {
    const node = this.nodes.get(nodeId);
    if (node === undefined) throw new Error(`node ${nodeId} is not running`);
    this.nodes.set(nodeId, undefined);
    await node.kill();
  }

  /** The node that is master now, if any. */
  master(): NodeRuntime | undefined {
    return [...this.nodes.values()].find((node) => node?.isMaster === true);
  }

  /**
   * Stops the whole cluster cleanly, without failovers: masters resign first (nobody replans), then
   * every vserver is committed and unmounted, then the nodes leave.
   */
  async stop(): Promise<void> {
    const running = [...this.nodes.values()].filter((n): n is NodeRuntime => n !== undefined);
    await Promise.allSettled(running.map((node) => node.resign()));
    await Promise.allSettled(running.map((node) => node.stopVservers()));
    await Promise.allSettled(running.map((node) => node.stop()));
    for (const id of this.nodes.keys()) this.nodes.set(id, undefined);
    await this.registry?.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
