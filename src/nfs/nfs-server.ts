import { randomBytes } from "node:crypto";
import { mkdir, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "pino";
import { BLOCK_BYTES, FileBlockDevice } from "../block/index.ts";
import { mkfs, mount, type Volume } from "../fs/index.ts";
import { portmapProgram } from "../rpc/portmap.ts";
import { RpcServer } from "../rpc/server.ts";
import type { RpcOutcome } from "../rpc/types.ts";
import { DuplicateRequestCache } from "./dup-cache.ts";
import { type ExportRule, ExportTable } from "./exports.ts";
import { FileHandleCodec } from "./file-handle.ts";
import { ProcedureMetrics } from "./metrics.ts";
import { MOUNT_PROGRAM, MOUNT_VERSION, mountProgram } from "./mount/mount-program.ts";
import { nfsProgram } from "./nfs-program.ts";
import { NFS_PROGRAM, NFS_VERSION } from "./nfs3.ts";
import type { NfsVolumeService } from "./procedure.ts";
import { loadOrCreateVserverConfig } from "./vserver-config.ts";

export interface NfsServerOptions {
  readonly dataDir: string;
  /** Address to listen on, e.g. 127.0.0.1. */
  readonly listen: string;
  /** Ports; 0 picks a free one. */
  readonly nfsPort: number;
  readonly mountPort: number;
  /** null: no portmapper. */
  readonly portmapPort: number | null;
  /** Size of the volume made on first start. */
  readonly sizeBytes: number;
  readonly exports: readonly ExportRule[];
  readonly logger: Logger;
  readonly cacheBytes?: number;
}

const VOLUME_FILE = "volume.img";

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** One vserver with one volume, served over NFSv3 and MOUNTv3 (and a portmapper) on one node. */
export class NfsServer {
  /** Per-procedure counters and latency histograms of NFS and MOUNT. */
  readonly metrics: ProcedureMetrics;
  readonly listenAddress: string;
  readonly nfsPort: number;
  readonly mountPort: number;
  readonly portmapPort: number | null;
  /** Random per start: clients resend uncommitted writes when it changes. */
  readonly writeVerifier: Uint8Array;
  private readonly volume: Volume;
  private readonly servers: readonly RpcServer[];
  private readonly logger: Logger;
  private stopping: Promise<void> | null = null;

  private constructor(fields: {
    metrics: ProcedureMetrics;
    listenAddress: string;
    nfsPort: number;
    mountPort: number;
    portmapPort: number | null;
    writeVerifier: Uint8Array;
    volume: Volume;
    servers: readonly RpcServer[];
    logger: Logger;
  }) {
    this.metrics = fields.metrics;
    this.listenAddress = fields.listenAddress;
    this.nfsPort = fields.nfsPort;
    this.mountPort = fields.mountPort;
    this.portmapPort = fields.portmapPort;
    this.writeVerifier = fields.writeVerifier;
    this.volume = fields.volume;
    this.servers = fields.servers;
    this.logger = fields.logger;
  }

  static async start(options: NfsServerOptions): Promise<NfsServer> {
    const log = options.logger;
    await mkdir(options.dataDir, { recursive: true });
    const { config, created } = await loadOrCreateVserverConfig(options.dataDir);
    const volumePath = join(options.dataDir, VOLUME_FILE);
    let device: FileBlockDevice;
    if (await exists(volumePath)) {
      device = await FileBlockDevice.open(volumePath);
    } else {
      const sizeBytes = Math.floor(options.sizeBytes / BLOCK_BYTES) * BLOCK_BYTES;
      device = await FileBlockDevice.create(volumePath, sizeBytes);
      await mkfs(device);
      log.info({ volume: volumePath, sizeBytes }, "made a new volume");
    }
    const volume = await mount(
      device,
      options.cacheBytes === undefined ? {} : { cacheBytes: options.cacheBytes },
    );
    const writeVerifier = new Uint8Array(randomBytes(8));
    const service: NfsVolumeService = {
      vserverId: config.vserverId,
      volumeId: config.volumeId,
      fsid: BigInt(config.vserverId) * 0x1_0000_0000n + BigInt(config.volumeId),
      volume,
      handles: new FileHandleCodec(config.handleKey),
      writeVerifier,
    };
    const table = new ExportTable(options.exports);
    const metrics = new ProcedureMetrics();
    const exportsNow = (): ExportTable => table;
    const nfs = new RpcServer({
      name: "nfs",
      logger: log,
      programs: [
        nfsProgram({
          service,
          exports: exportsNow,
          logger: log,
          metrics,
          dupCache: new DuplicateRequestCache<RpcOutcome>(),
        }),
      ],
    });
    const mountd = new RpcServer({
      name: "mount",
      logger: log,
      programs: [mountProgram({ service, exports: exportsNow, logger: log, metrics })],
    });
    const servers: RpcServer[] = [nfs, mountd];
    try {
      const nfsBound = await nfs.listen(options.listen, options.nfsPort);
      const mountBound = await mountd.listen(options.listen, options.mountPort);
      let portmapPort: number | null = null;
      if (options.portmapPort !== null) {
        const mappings = [
          { program: NFS_PROGRAM, version: NFS_VERSION, protocol: "tcp" as const, port: nfsBound.port },
          { program: MOUNT_PROGRAM, version: MOUNT_VERSION, protocol: "tcp" as const, port: mountBound.port },
        ];
        const portmap = new RpcServer({
          name: "portmap",
          logger: log,
          programs: [portmapProgram(() => mappings)],
        });
        servers.push(portmap);
        portmapPort = (await portmap.listen(options.listen, options.portmapPort)).port;
      }
      const server = new NfsServer({
        metrics,
        listenAddress: options.listen,
        nfsPort: nfsBound.port,
        mountPort: mountBound.port,
        portmapPort,
        writeVerifier,
        volume,
        servers,
        logger: log,
      });
      log.info(
        {
          vserverId: config.vserverId,
          created,
          nfsPort: server.nfsPort,
          mountPort: server.mountPort,
          portmapPort,
        },
        "serving",
      );
      return server;
    } catch (error) {
      await Promise.allSettled(servers.map((s) => s.close()));
      await volume.unmount();
      throw error;
    }
  }

  /** The URL a libnfs client mounts the export with. */
  get url(): string {
    const host = this.listenAddress.includes(":") ? `[${this.listenAddress}]` : this.listenAddress;
    return `nfs://${host}/?version=3&nfsport=${this.nfsPort}&mountport=${this.mountPort}`;
  }

  /** Stops accepting, lets calls in flight finish, commits and unmounts the volume. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await Promise.allSettled(this.servers.map((s) => s.close()));
      await this.volume.unmount();
      this.logger.info("stopped");
    })();
    return this.stopping;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}
