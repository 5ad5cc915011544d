/**
 * `flotilla serve`: one vserver with one volume in a local file, on one address, with a portmapper:
 * a VserverRuntime on a FileBlockDevice, the volume made (and its handle key drawn, in
 * DATA/vserver.json) on first start.
 */
import { mkdir, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "pino";
import { BLOCK_BYTES, FileBlockDevice } from "../block/index.ts";
import type { ExportRule } from "../nfs/exports.ts";
import { MOUNT_PROGRAM, MOUNT_VERSION } from "../nfs/mount/mount-program.ts";
import { NFS_PROGRAM, NFS_VERSION } from "../nfs/nfs3.ts";
import { loadOrCreateVserverConfig } from "../nfs/vserver-config.ts";
import { portmapProgram } from "../rpc/portmap.ts";
import { RpcServer } from "../rpc/server.ts";
import { assert } from "../util/assert.ts";
import { VserverRuntime } from "./vserver-runtime.ts";

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

export class NfsServer implements AsyncDisposable {
  readonly nfsPort: number;
  readonly mountPort: number;
  readonly portmapPort: number | null;
  /** The URL a libnfs client mounts the export with. */
  readonly url: string;
  private readonly runtime: VserverRuntime;
  private readonly portmap: RpcServer | undefined;
  private readonly logger: Logger;
  private stopping: Promise<void> | undefined;

  private constructor(
    runtime: VserverRuntime,
    portmap: RpcServer | undefined,
    portmapPort: number | null,
    logger: Logger,
  ) {
    const endpoint = runtime.endpoints[0];
    assert(endpoint !== undefined, "the runtime listens on one address");
    this.runtime = runtime;
    this.portmap = portmap;
    this.nfsPort = endpoint.nfsPort;
    this.mountPort = endpoint.mountPort;
    this.portmapPort = portmapPort;
    this.url = endpoint.url;
    this.logger = logger;
  }

  static async start(options: NfsServerOptions): Promise<NfsServer> {
    const log = options.logger;
    await mkdir(options.dataDir, { recursive: true });
    const { config, created } = await loadOrCreateVserverConfig(options.dataDir);
    const volumePath = join(options.dataDir, VOLUME_FILE);
    const fresh = !(await exists(volumePath));
    const device = fresh
      ? await FileBlockDevice.create(volumePath, Math.floor(options.sizeBytes / BLOCK_BYTES) * BLOCK_BYTES)
      : await FileBlockDevice.open(volumePath);
    if (fresh)
      log.info({ volume: volumePath, sizeBytes: device.blockCount * BLOCK_BYTES }, "making a new volume");
    const runtime = await VserverRuntime.start({
      vserverId: config.vserverId,
      volumeId: config.volumeId,
      handleKey: config.handleKey,
      device,
      format: fresh,
      vips: [options.listen],
      nfsPort: options.nfsPort,
      mountPort: options.mountPort,
      exports: options.exports,
      logger: log,
      ...(options.cacheBytes === undefined ? {} : { cacheBytes: options.cacheBytes }),
    });
    const endpoint = runtime.endpoints[0];
    assert(endpoint !== undefined, "the runtime listens on one address");
    let portmap: RpcServer | undefined;
    let portmapPort: number | null = null;
    if (options.portmapPort !== null) {
      const mappings = [
        { program: NFS_PROGRAM, version: NFS_VERSION, protocol: "tcp" as const, port: endpoint.nfsPort },
        {
          program: MOUNT_PROGRAM,
          version: MOUNT_VERSION,
          protocol: "tcp" as const,
          port: endpoint.mountPort,
        },
      ];
      portmap = new RpcServer({ name: "portmap", logger: log, programs: [portmapProgram(() => mappings)] });
      try {
        portmapPort = (await portmap.listen(options.listen, options.portmapPort)).port;
      } catch (error) {
        await runtime.stop();
        throw error;
      }
    }
    log.info(
      {
        vserverId: config.vserverId,
        created,
        nfsPort: endpoint.nfsPort,
        mountPort: endpoint.mountPort,
        portmapPort,
      },
      "serving",
    );
    return new NfsServer(runtime, portmap, portmapPort, log);
  }

  /** Stops accepting, lets calls in flight finish, commits and unmounts the volume. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await this.portmap?.close();
      await this.runtime.stop();
      this.logger.info("stopped");
    })();
    return this.stopping;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}
