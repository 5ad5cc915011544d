/**
 * One cluster node: its storage server (storage role), its membership lease and health, its bid for
 * master (and, while master, the planner loop and the storage tier's replica supervisor), and its
 * agent serving the vservers placed on it (filer role). `flotilla node` runs one per process;
 * `flotilla cluster up` runs three in one process on the embedded store.
 */
import { mkdir } from "node:fs/promises";
import { cpus, freemem, loadavg } from "node:os";
import type { Logger } from "pino";
import { NodeNetwork } from "../net/node-network.ts";
import { PORT_BALANCE_DEFAULT, type PortBalancePolicy } from "../net/port-balance.ts";
import type { PortConfig } from "../net/port-monitor.ts";
import { commandRunner, LinuxVipDriver, LoopbackVipDriver } from "../net/vip-driver.ts";
import type { ProcedureMetrics } from "../nfs/metrics.ts";
import type { BalancePolicy } from "../storage/balance-plan.ts";
import { StorageBalancer } from "../storage/balancer.ts";
import { ChunkMover } from "../storage/chunk-mover.ts";
import { ownerEpochs, StorageMembership } from "../storage/membership.ts";
import { ReplicaSupervisor } from "../storage/replica-supervisor.ts";
import { ServerRegistry } from "../storage/server-registry.ts";
import { StorageServer } from "../storage/storage-server.ts";
import type { CoordinationStore } from "../store/index.ts";
import { assert } from "../util/assert.ts";
import {
  type ConnectionsRecord,
  clusterKeys,
  connectionsRecordSchema,
  decodeRecord,
  encodeRecord,
  type NodeRecord,
  ROUTES_PREFIX,
} from "./catalog.ts";
import { tierEventSink } from "./event-log.ts";
import { Master } from "./master.ts";
import { MasterElection } from "./master-election.ts";
import type { NodeRole, PlannerPolicy } from "./model.ts";
import { peerAddresses, routesNaming } from "./network-view.ts";
import { NodeAgent } from "./node-agent.ts";
import { NodeMembership } from "./node-membership.ts";
import { VolumeServers } from "./volume-servers.ts";

export interface NodeStorageOptions {
  readonly dataDir: string;
  readonly host: string;
  /** 0: any free port. */
  readonly port: number;
  readonly capacityBytes: number;
  /** A storage server's lease: it is declared missing when this runs out. */
  readonly leaseTtlMs: number;
}

export interface NodeRuntimeOptions {
  readonly store: CoordinationStore;
  readonly nodeId: string;
  readonly roles: readonly NodeRole[];
  /** The cluster secret shared by storage servers and filers. */
  readonly secret: Uint8Array;
  /** Required with the storage role. */
  readonly storage?: NodeStorageOptions;
  readonly leaseTtlMs: number;
  readonly vserversMax: number;
  /** How long a storage server may be missing before the master declares it dead. */
  readonly storageGraceMs: number;
  readonly policy?: PlannerPolicy;
  /** See MasterOptions.takeoverGraceMs; default twice the lease TTL. */
  readonly takeoverGraceMs?: number;
  readonly adminUrl?: string;
  /** Pages for its vservers' service state (see NodeAgentOptions.statePagesMax). */
  readonly statePagesMax?: number;
  /** The pre-copy's bandwidth limit, bytes per second (0 or absent: none). */
  readonly precopyBytesPerSec?: number;
  /** The address this node takes live moves on (default 127.0.0.1; a free port is picked). */
  readonly moveHost?: string;
  /**
   * The node's network: "loopback" (default: VIPs in 127.0.0.0/8, no ports) or "linux" (VIPs on the
   * listed physical ports, announced by gratuitous ARP; each port's client subnet, or null).
   */
  readonly network?: {
    readonly driver: "loopback" | "linux";
    readonly ports: readonly PortConfig[];
    /** Tickle the previous holder's clients when VIPs arrive (default true). */
    readonly tickle?: boolean;
    /** VIPs balanced over ports by load (default PORT_BALANCE_DEFAULT; false: off). */
    readonly portBalance?: PortBalancePolicy | false;
  };
  /** Where its vservers' NFS calls are counted (see NodeAgentOptions.nfsMetrics). */
  readonly nfsMetrics?: (vserverId: string) => ProcedureMetrics;
  /** The storage balancer this node runs while it is master (default: automatic, default policy). */
  readonly storageBalance?: BalancePolicy & { readonly auto: boolean; readonly intervalMs: number };
  readonly logger: Logger;
}

export const NODE_LEASE_TTL_MS_DEFAULT = 1000;
export const VSERVERS_PER_NODE_DEFAULT = 64;

export class NodeRuntime implements AsyncDisposable {
  readonly nodeId: string;
  storageServer: StorageServer | undefined;
  private storageMembership: StorageMembership | undefined;
  private registryRef: ServerRegistry | undefined;
  private membership: NodeMembership | undefined;
  private election: MasterElection | undefined;
  private agentRef: NodeAgent | undefined;
  private networkRef: NodeNetwork | undefined;
  private master:
    | {
        master: Promise<Master | undefined>;
        supervisor: ReplicaSupervisor | undefined;
        balancer: StorageBalancer | undefined;
        volumeServers: VolumeServers;
      }
    | undefined;
  private readonly options: NodeRuntimeOptions;
  private readonly log: Logger;
  private readonly startedAtMs = Date.now();
  private stopped = false;

  private constructor(options: NodeRuntimeOptions) {
    this.options = options;
    this.nodeId = options.nodeId;
    this.log = options.logger.child({ nodeId: options.nodeId });
  }

  static async start(options: NodeRuntimeOptions): Promise<NodeRuntime> {
    const node = new NodeRuntime(options);
    try {
      await node.startParts();
    } catch (error) {
      await node.kill();
      throw error;
    }
    return node;
  }

  private async startParts(): Promise<void> {
    const { store, nodeId, secret } = this.options;
    this.registryRef = await ServerRegistry.openWithSecret(store, secret, this.log);
    if (this.options.roles.includes("storage")) {
      const storage = this.options.storage;
      if (storage === undefined) throw new Error(`node ${nodeId}: the storage role needs storage options`);
      await mkdir(storage.dataDir, { recursive: true });
      this.storageServer = await StorageServer.start({
        serverId: nodeId,
        dataDir: storage.dataDir,
        host: storage.host,
        port: storage.port,
        secret,
        capacityBytes: storage.capacityBytes,
        directory: this.registryRef,
        logger: this.log,
        ownerEpochs: (await ownerEpochs(store)).epochs,
      });
      this.storageMembership = await StorageMembership.join(this.storageServer, {
        store,
        leaseTtlMs: storage.leaseTtlMs,
        logger: this.log,
      });
    }
    const registry = this.registryRef;
    const network = this.options.network ?? { driver: "loopback", ports: [] };
    this.networkRef = await NodeNetwork.start({
      nodeId,
      driver:
        network.driver === "linux" ? new LinuxVipDriver({ run: commandRunner() }) : new LoopbackVipDriver(),
      ports: network.driver === "linux" ? network.ports : [],
      tickle: network.tickle ?? true,
      portBalance: network.portBalance === false ? null : (network.portBalance ?? PORT_BALANCE_DEFAULT),
      vipBytes: () => this.agentRef?.vipBytes() ?? new Map(),
      storageServers: () =>
        registry.servers().map((r) => ({ serverId: r.serverId, host: r.host, port: r.port })),
      logger: this.log,
      onChange: () => this.membership?.publish(),
      peerAddresses: (subnet) => peerAddresses(this.agentRef?.cluster, nodeId, subnet),
      routes: () => routesNaming(this.agentRef?.cluster, nodeId),
      connections: {
        publish: async (vserverId, connections) => {
          const record: ConnectionsRecord = { nodeId, atMs: Date.now(), connections: [...connections] };
          await store.put(clusterKeys.connections(vserverId), encodeRecord(connectionsRecordSchema, record));
        },
        previous: async (vserverId) => {
          const key = clusterKeys.connections(vserverId);
          const kv = await store.get(key);
          return kv === undefined ? [] : decodeRecord(connectionsRecordSchema, key, kv.value).connections;
        },
      },
    });
    this.membership = await NodeMembership.join({
      store,
      nodeId,
      leaseTtlMs: this.options.leaseTtlMs,
      health: () => this.health(),
      onLost: () => {
        this.election?.leaseLost();
        void this.agentRef?.suspend();
      },
      onRejoined: () => this.agentRef?.reconcile(),
      logger: this.log,
    });
    if (this.options.roles.includes("filer")) {
      this.agentRef = await NodeAgent.start({
        store,
        nodeId,
        servers: this.registryRef,
        lease: () => this.membership?.lease,
        logger: this.log,
        vips: this.networkRef,
        move: {
          secret,
          host: this.options.moveHost ?? "127.0.0.1",
          precopyBytesPerSec: this.options.precopyBytesPerSec ?? 0,
        },
        vserversMax: this.options.vserversMax,
        onClusterChange: (changes) => {
          if (changes === null || changes.some((c) => c.key.startsWith(ROUTES_PREFIX)))
            void this.networkRef?.routesChanged();
        },
        ...(this.options.nfsMetrics === undefined ? {} : { nfsMetrics: this.options.nfsMetrics }),
        ...(this.options.statePagesMax === undefined ? {} : { statePagesMax: this.options.statePagesMax }),
      });
    }
    // The move address is known only now: publish it at once rather than at the next refresh.
    this.membership.publish();
    this.election = new MasterElection({
      store,
      nodeId,
      lease: () => this.membership?.lease,
      pollMs: Math.max(100, Math.floor(this.options.leaseTtlMs / 4)),
      onElected: (term) => this.becomeMaster(term),
      onDeposed: () => void this.stopMaster(),
      logger: this.log,
    });
  }

  /** The storage servers this node knows (for operator work through the admin API). */
  get registry(): ServerRegistry {
    assert(this.registryRef !== undefined, "a started node has a registry");
    return this.registryRef;
  }

  get agent(): NodeAgent | undefined {
    return this.agentRef;
  }

  get isMaster(): boolean {
    return (this.election?.currentTerm ?? 0) !== 0;
  }

  private health(): NodeRecord {
    return {
      nodeId: this.nodeId,
      roles: [...this.options.roles],
      vserversMax: this.options.roles.includes("filer") ? this.options.vserversMax : 0,
      loadPerCore: (loadavg()[0] ?? 0) / Math.max(1, cpus().length),
      memoryFreeBytes: freemem(),
      // Client subnets with a good port here, and storage servers that answered a probe.
      reaches: (this.networkRef?.reaches() ?? []).slice(0, 256),
      ports: (this.networkRef?.ports() ?? []).slice(0, 64),
      vipPorts: (this.networkRef?.placements() ?? [])
        .slice(0, 1024)
        .map((p) => ({ vip: p.vip, port: p.port })),
      storageServerId: this.storageServer === undefined ? null : this.nodeId,
      adminUrl: this.options.adminUrl ?? "",
      startedAtMs: this.startedAtMs,
      pid: process.pid,
      moveAddress: this.agentRef?.moveAddress ?? "",
      statePagesFree: this.agentRef?.pages.pagesFree ?? 0,
      statePagesMax: this.agentRef?.pages.pagesMax ?? 0,
      serviceState: this.agentRef?.serviceState() ?? [],
    };
  }

  private becomeMaster(term: number): void {
    const registry = this.registryRef;
    if (registry === undefined || this.stopped) return;
    const mover = new ChunkMover({ store: this.options.store, servers: registry, logger: this.log });
    const supervisor = new ReplicaSupervisor({
      store: this.options.store,
      registry,
      mover,
      graceMs: this.options.storageGraceMs,
      logger: this.log,
      onEvent: tierEventSink(this.options.store, this.nodeId, this.log),
    });
    const volumeServers = new VolumeServers(this.options.store, this.log);
    const master = Master.start({
      store: this.options.store,
      storageServersOf: (volumeId) => volumeServers.serversOf(volumeId),
      nodeId: this.nodeId,
      term,
      takeoverGraceMs: this.options.takeoverGraceMs ?? this.options.leaseTtlMs * 2,
      nodeStartedAtMs: this.startedAtMs,
      ...(this.options.policy === undefined ? {} : { policy: this.options.policy }),
      logger: this.log,
    }).catch((error: unknown) => {
      this.log.error({ err: error }, "could not start the master");
      return undefined;
    });
    const balance = this.options.storageBalance;
    const balancer = new StorageBalancer({
      store: this.options.store,
      registry,
      mover,
      auto: balance?.auto ?? true,
      ...(balance === undefined ? {} : { policy: balance, intervalMs: balance.intervalMs }),
      logger: this.log,
      onEvent: tierEventSink(this.options.store, this.nodeId, this.log),
    });
    this.master = { master, supervisor, balancer, volumeServers };
    supervisor.start();
    balancer.start();
    // Moves a previous master left half done go on from their checkpoints.
    void mover
      .pendingMoves()
      .then((plans) =>
        Promise.allSettled(
          plans.map((plan) =>
            mover
              .move(plan)
              .catch((error: unknown) => this.log.warn({ err: error, plan }, "resumed move failed")),
          ),
        ),
      )
      .catch((error: unknown) => this.log.warn({ err: error }, "could not list pending moves"));
  }

  private async stopMaster(): Promise<void> {
    const running = this.master;
    this.master = undefined;
    if (running === undefined) return;
    running.volumeServers[Symbol.dispose]();
    await running.balancer?.close();
    await running.supervisor?.close();
    await (await running.master)?.close();
  }

  /** A crash: sockets cut, nothing flushed, nothing released; the cluster notices by lease expiry. */
  async kill(): Promise<void> {
    this.stopped = true;
    this.membership?.abandon();
    this.election?.abandon();
    this.storageMembership?.abandon();
    await Promise.allSettled([
      this.agentRef?.kill(),
      this.storageServer?.abort(),
      this.stopMaster(),
      this.registryRef?.close(),
    ]);
    this.log.warn("node killed");
  }

  /** Gives up the master seat (if held) and stops taking part in elections. */
  async resign(): Promise<void> {
    await this.election?.close();
    await this.stopMaster();
  }

  /** Stops every vserver on this node cleanly (committed, unmounted); the node stays a member. */
  async stopVservers(): Promise<void> {
    await this.agentRef?.close();
  }

  /**
   * A clean stop: vservers committed and unmounted, then the leases given up so others act at once.
   * A whole cluster stopping calls resign and stopVservers on every node first, so nothing fails over.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.stopVservers();
    await this.resign();
    await this.membership?.close();
    await this.storageMembership?.close();
    await this.storageServer?.stop();
    await this.registryRef?.close();
    this.log.info("node stopped");
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}
