/**
 * One vserver running on this node: its volume mounted from a block device (the node agent has
 * already taken ownership and fenced the previous owner), and NFS and MOUNT answered on each of its
 * VIPs. Its handles are keyed by its own secret, so a handle of another vserver is refused here.
 */
import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import type { BlockDevice } from "../block/index.ts";
import { mkfs, mount, type Volume } from "../fs/index.ts";
import { DuplicateRequestCache } from "../nfs/dup-cache.ts";
import { type ExportRule, ExportTable } from "../nfs/exports.ts";
import { FileHandleCodec } from "../nfs/file-handle.ts";
import { ProcedureMetrics } from "../nfs/metrics.ts";
import { mountProgram } from "../nfs/mount/mount-program.ts";
import { nfsProgram } from "../nfs/nfs-program.ts";
import type { NfsVolumeService } from "../nfs/procedure.ts";
import { RpcServer } from "../rpc/index.ts";
import type { RpcOutcome } from "../rpc/types.ts";
import { assert } from "../util/assert.ts";
import { PagePool } from "./arena.ts";
import { CallGate } from "./call-gate.ts";
import { SERVICE_PAGES_MAX_DEFAULT, ServiceState, type ServiceStateStats } from "./service-state.ts";

export interface VserverRuntimeOptions {
  /** 32-bit ids that go into file handles: stable for the vserver's life, across failovers. */
  readonly vserverId: number;
  readonly volumeId: number;
  /** The vserver's handle key (32 bytes or more), the same on every node that runs it. */
  readonly handleKey: Uint8Array;
  readonly device: BlockDevice;
  /** Make a file system on the device first: only for a volume never formatted. */
  readonly format: boolean;
  /** Addresses to answer on: the vserver's VIPs. */
  readonly vips: readonly string[];
  /** The same ports on every VIP; 0 lets each VIP pick its own. */
  readonly nfsPort: number;
  readonly mountPort: number;
  readonly exports: readonly ExportRule[];
  readonly logger: Logger;
  readonly cacheBytes?: number;
  /** How often a transaction group commits on its own (default 500 ms; 0: only when asked, for tests). */
  readonly txgIntervalMs?: number;
  /**
   * The vserver's further volumes (already formatted), each exported as "/NAME" beside the first
   * volume's "/"; `volumeId` goes into their handles and must differ from every other.
   */
  readonly more?: readonly {
    readonly name: string;
    readonly volumeId: number;
    readonly device: BlockDevice;
  }[];
  /**
   * Where its NFS and MOUNT calls are counted: the node's, so that counts go on across restarts and
   * moves between nodes of one process (its own when not given).
   */
  readonly metrics?: ProcedureMetrics;
  /** The node's pool for service-state pages (a pool of this vserver's own when not given). */
  readonly pages?: PagePool;
  /**
   * State moved live from another node (reply cache, mounts, clients, write verifier); the runtime
   * owns it once started. A fresh state with a new write verifier when not given.
   */
  readonly state?: ServiceState;
}

export interface VipEndpoint {
  readonly address: string;
  readonly nfsPort: number;
  readonly mountPort: number;
  /** What a libnfs client mounts the export with. */
  readonly url: string;
}

/**
 * The URL a libnfs client mounts the export "/" with. A file name can be put straight after the
 * host (`nfs://HOST/f.bin?...`): libnfs then mounts the empty path, which MOUNT answers with the
 * root export. `auto-traverse-mounts=0` because libnfs refuses to look for nested exports under an
 * empty export path ("Export is empty", printed as "mount_cb: (null)"), and a vserver's further
 * volumes are mounted by their own path (`nfs://HOST/VOLUME/...`), never crossed into.
 */
export function libnfsUrl(host: string, nfsPort: number, mountPort: number): string {
  return `nfs://${host}/?version=3&nfsport=${nfsPort}&mountport=${mountPort}&auto-traverse-mounts=0`;
}

export class VserverRuntime implements AsyncDisposable {
  readonly endpoints: readonly VipEndpoint[];
  /**
   * New at every cold start, so clients resend unstable writes after a failover; kept by a live move,
   * which commits everything before the state leaves.
   */
  readonly writeVerifier: Uint8Array;
  readonly state: ServiceState;
  readonly metrics: ProcedureMetrics;
  readonly volume: Volume;
  /** The further volumes, by export name. */
  readonly moreVolumes: ReadonlyMap<string, Volume>;
  private readonly servers: readonly RpcServer[];
  private readonly gate: CallGate;
  private readonly log: Logger;
  private stopping: Promise<void> | undefined;

  private constructor(fields: {
    endpoints: VipEndpoint[];
    state: ServiceState;
    gate: CallGate;
    metrics: ProcedureMetrics;
    volume: Volume;
    moreVolumes: Map<string, Volume>;
    servers: RpcServer[];
    log: Logger;
  }) {
    this.endpoints = fields.endpoints;
    this.state = fields.state;
    this.writeVerifier = fields.state.writeVerifier;
    this.gate = fields.gate;
    this.metrics = fields.metrics;
    this.volume = fields.volume;
    this.moreVolumes = fields.moreVolumes;
    this.servers = fields.servers;
    this.log = fields.log;
  }

  static async start(options: VserverRuntimeOptions): Promise<VserverRuntime> {
    const state =
      options.state ??
      ServiceState.create(
        options.pages ?? new PagePool(SERVICE_PAGES_MAX_DEFAULT),
        options.vserverId,
        new Uint8Array(randomBytes(8)),
      );
    try {
      return await VserverRuntime.startWith(options, state);
    } catch (error) {
      // A state given stays the caller's until a start succeeds (it may try again with it).
      if (options.state === undefined) state.dispose();
      throw error;
    }
  }

  private static async startWith(
    options: VserverRuntimeOptions,
    state: ServiceState,
  ): Promise<VserverRuntime> {
    assert(options.vips.length > 0, "a vserver answers on at least one VIP");
    assert(state.arena.tag === options.vserverId, "a service state is its own vserver's");
    const log = options.logger.child({ vserverId: options.vserverId });
    if (options.format) {
      await mkfs(options.device);
      log.info("made a new file system");
    }
    const mountOptions = {
      ...(options.cacheBytes === undefined ? {} : { cacheBytes: options.cacheBytes }),
      ...(options.txgIntervalMs === undefined ? {} : { txgIntervalMs: options.txgIntervalMs }),
    };
    const volume = await mount(options.device, mountOptions);
    const writeVerifier = state.writeVerifier;
    const handles = new FileHandleCodec(options.handleKey);
    const serviceOf = (volumeId: number, mounted: Volume): NfsVolumeService => ({
      vserverId: options.vserverId,
      volumeId,
      fsid: BigInt(options.vserverId) * 0x1_0000_0000n + BigInt(volumeId),
      volume: mounted,
      handles,
      writeVerifier,
    });
    const service = serviceOf(options.volumeId, volume);
    const more = new Map<string, NfsVolumeService>();
    const moreVolumes = new Map<string, Volume>();
    try {
      for (const extra of options.more ?? []) {
        assert(
          extra.volumeId !== options.volumeId &&
            ![...more.values()].some((s) => s.volumeId === extra.volumeId),
          "every volume of a vserver has its own id",
        );
        const mounted = await mount(extra.device, mountOptions);
        moreVolumes.set(extra.name, mounted);
        more.set(extra.name, serviceOf(extra.volumeId, mounted));
      }
    } catch (error) {
      await Promise.allSettled([volume, ...moreVolumes.values()].map((v) => v.unmount()));
      throw error;
    }
    const table = new ExportTable(options.exports);
    const exports = (): ExportTable => table;
    const metrics = options.metrics ?? new ProcedureMetrics();
    // One cache for all VIPs: a retransmission that arrives on another VIP is still answered from it.
    const dupCache = new DuplicateRequestCache<RpcOutcome>(state.replies);
    const gate = new CallGate();
    const onCall = (client: string): void => state.clients.seen(client);
    const servers: RpcServer[] = [];
    const endpoints: VipEndpoint[] = [];
    try {
      for (const address of options.vips) {
        const nfs = new RpcServer({
          name: "nfs",
          logger: log,
          programs: [
            gate.wrap(nfsProgram({ service, more, exports, logger: log, metrics, dupCache, onCall })),
          ],
        });
        const mountd = new RpcServer({
          name: "mount",
          logger: log,
          programs: [
            gate.wrap(mountProgram({ service, more, exports, logger: log, metrics, mounts: state.mounts })),
          ],
        });
        servers.push(nfs, mountd);
        const nfsPort = (await nfs.listen(address, options.nfsPort)).port;
        const mountPort = (await mountd.listen(address, options.mountPort)).port;
        const host = address.includes(":") ? `[${address}]` : address;
        endpoints.push({
          address,
          nfsPort,
          mountPort,
          url: libnfsUrl(host, nfsPort, mountPort),
        });
      }
    } catch (error) {
      await Promise.allSettled(servers.map((s) => s.close()));
      await Promise.allSettled([volume, ...moreVolumes.values()].map((v) => v.unmount()));
      throw error;
    }
    log.info({ endpoints: endpoints.map((e) => e.url) }, "vserver serving");
    return new VserverRuntime({ endpoints, state, gate, metrics, volume, moreVolumes, servers, log });
  }

  private get volumes(): Volume[] {
    return [this.volume, ...this.moreVolumes.values()];
  }

  stateStats(): ServiceStateStats {
    return this.state.stats();
  }

  /** Bytes in and out on each VIP since the runtime started (its NFS and MOUNT listeners there). */
  vipBytes(): Map<string, number> {
    const bytes = new Map<string, number>();
    for (const [i, endpoint] of this.endpoints.entries()) {
      // Listeners go in pairs per VIP, NFS then MOUNT, in the order of the endpoints.
      const pair = this.servers.slice(2 * i, 2 * i + 2);
      let total = 0;
      for (const server of pair) {
        const { in: inBytes, out } = server.networkBytes();
        total += inBytes + out;
      }
      bytes.set(endpoint.address, total);
    }
    return bytes;
  }

  /**
   * For a live move: new calls are held, those running finish (within `drainMs`), and every volume
   * commits, so nothing acknowledged depends on this node once the state has left. Undone by resume.
   */
  async suspend(drainMs: number): Promise<void> {
    assert(this.stopping === undefined, "a stopping vserver is not suspended");
    await this.gate.shutAndDrain(drainMs);
    try {
      await Promise.all(this.volumes.map((v) => v.commit()));
    } catch (error) {
      this.gate.open();
      throw error;
    }
  }

  /** A rolled-back move: the held calls go on here. */
  resume(): void {
    this.gate.open();
  }

  /**
   * The move went through: held calls are dropped and every connection cut, so that clients reconnect
   * at once (to the new owner, on the same VIPs); the volumes, committed at the suspend, unmount.
   */
  handOff(): Promise<void> {
    return this.finish((server) => server.abort(), "vserver handed off after a live move");
  }

  /**
   * Stops answering, lets calls in flight finish, commits and unmounts. `closeTimeoutMs` bounds the
   * wait for clients to close their connections (shorter when they cannot reach this node anyway).
   */
  stop(closeTimeoutMs?: number): Promise<void> {
    return this.finish((server) => server.close(closeTimeoutMs), "vserver stopped");
  }

  /** Drops new and held calls, ends the servers as `end` does, unmounts, frees the state's pages. */
  private finish(end: (server: RpcServer) => Promise<void>, message: string): Promise<void> {
    this.stopping ??= (async () => {
      this.gate.abandon();
      await Promise.allSettled(this.servers.map(end));
      try {
        await Promise.all(this.volumes.map((v) => v.unmount()));
      } finally {
        this.state.dispose();
      }
      this.log.info({ dropped: this.gate.dropped }, message);
    })();
    return this.stopping;
  }

  /**
   * Stops answering at once and cuts every connection, without committing or unmounting: for a node
   * that has lost its lease or been fenced (its writes would be refused anyway), and for a simulated
   * crash. Nothing unacknowledged is promised to anyone; acknowledged stable writes are on storage.
   */
  async abort(): Promise<void> {
    this.gate.abandon();
    const aborted = Promise.allSettled(this.servers.map((s) => s.abort()));
    this.stopping ??= aborted.then(() => {
      this.state.dispose();
      this.log.warn("vserver aborted");
    });
    await aborted;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}
