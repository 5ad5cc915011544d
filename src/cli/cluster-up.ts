/**
 * `flotilla cluster up` (what `npm start` runs): a whole cluster on this machine, in this process, on
 * the embedded store: three nodes with storage servers, two vservers of two loopback VIPs each on
 * replicated volumes, and the admin API. Nothing else to install. The first start provisions the
 * vservers; later starts find them, and their data, where they were.
 */
import { mkdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import { type Command, InvalidArgumentError, Option } from "commander";
import { pino } from "pino";
import { ADMIN_PORT_DEFAULT, AdminServer } from "../api/admin-server.ts";
import { NfsMetrics } from "../api/nfs-metrics.ts";
import { readClusterSnapshot } from "../cluster/cluster-view.ts";
import { createVserver } from "../cluster/desired-state.ts";
import { LocalCluster } from "../cluster/local-cluster.ts";
import { createVolume } from "../storage/volumes.ts";
import { type CoordinationStore, EmbeddedStore } from "../store/index.ts";
import { parseMilliseconds } from "./cluster-options.ts";
import { type Output, processOutput } from "./output.ts";
import { runVerb, untilStopSignal } from "./run-verb.ts";
import { parseSizeOption } from "./storage.ts";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
/** How long the first start waits for its vservers to come up before it says so and goes on. */
const READY_WAIT_MS = 60_000;

interface UpOptions {
  readonly data: string;
  readonly nodes: number;
  readonly nfsPort: number;
  readonly mountPort: number;
  readonly volumeSize: number;
  readonly leaseTtl: number;
  readonly adminPort: number;
  readonly logLevel: string;
}

/** The demo's vservers: made on the first start only. */
const DEMO_VSERVERS = [
  { id: "vs1", vips: ["127.0.1.1", "127.0.1.2"], priority: 10 },
  { id: "vs2", vips: ["127.0.2.1", "127.0.2.2"], priority: 0 },
];

async function provision(
  store: CoordinationStore,
  cluster: LocalCluster,
  options: UpOptions,
  output: Output,
): Promise<void> {
  const snapshot = await readClusterSnapshot(store);
  if (snapshot.vservers.size > 0) return;
  for (const vs of DEMO_VSERVERS) {
    const volumeId = `${vs.id}-data`;
    await createVolume(store, cluster.registry, {
      volumeId,
      sizeBytes: options.volumeSize,
      replicationFactor: 2,
    });
    await createVserver(store, {
      id: vs.id,
      vips: vs.vips,
      volumes: [volumeId],
      priority: vs.priority,
      nfsPort: options.nfsPort,
      mountPort: options.mountPort,
    });
    output.line(
      `made vserver ${vs.id} (VIPs ${vs.vips.join(", ")}) on volume ${volumeId} (${options.volumeSize / MiB} MiB, 2 replicas)`,
    );
  }
}

/** Waits until every vserver runs where it is placed (or the wait runs out), then prints them. */
async function report(store: CoordinationStore, output: Output): Promise<void> {
  const deadline = Date.now() + READY_WAIT_MS;
  for (;;) {
    const snapshot = await readClusterSnapshot(store);
    const pending = [...snapshot.vservers.keys()].filter((id) => {
      const placement = snapshot.placements.get(id)?.record;
      const running = snapshot.running.get(id);
      return placement === undefined || running === undefined || running.generation !== placement.generation;
    });
    if (pending.length === 0 || Date.now() > deadline) {
      for (const [id, { record }] of snapshot.vservers) {
        const running = snapshot.running.get(id);
        const first = running?.endpoints[0];
        output.line(
          running === undefined || first === undefined
            ? `  ${id}  not running yet (flotilla status says why)`
            : `  ${id}  on ${running.nodeId}  ${first.url}   (VIPs ${record.vips.join(", ")})`,
        );
      }
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function runUp(options: UpOptions, output: Output): Promise<number> {
  const dataDir = resolve(options.data);
  await mkdir(dataDir, { recursive: true });
  const logFile = join(dataDir, "flotilla.log");
  const logger = pino(
    { name: "flotilla", level: options.logLevel },
    pino.destination({ dest: logFile, mkdir: true }),
  );
  // The desired state (vservers, volumes, routing, owner epochs) outlives the process in this file.
  const store = await EmbeddedStore.open({ persistPath: join(dataDir, "store.json") });
  const nodeIds = Array.from({ length: options.nodes }, (_, i) => `n${i + 1}`);
  output.line(`starting ${nodeIds.length} nodes (data in ${dataDir}, logs in ${logFile})`);
  // Every node of this process counts its vservers' NFS calls here; the admin API serves them.
  const nfsMetrics = new NfsMetrics();
  const cluster = await LocalCluster.start({
    dataDir,
    nfsMetrics: nfsMetrics.forVserver,
    store,
    nodeIds,
    leaseTtlMs: options.leaseTtl,
    storageLeaseTtlMs: options.leaseTtl,
    // As in flotilla node: a node's storage server dies with it, its lease is the whole detection.
    storageGraceMs: 0,
    capacityBytes: 16 * GiB,
    logger,
  });
  const tokenFile = join(dataDir, "admin-token");
  let admin: AdminServer;
  try {
    admin = await AdminServer.start({
      store,
      registry: cluster.registry,
      port: options.adminPort,
      tokenFile,
      logger,
      faults: { killNode: (nodeId) => cluster.killNode(nodeId) },
      nfsMetrics,
    });
  } catch (error) {
    await cluster.stop();
    await store.close();
    throw error;
  }
  await provision(store, cluster, options, output);
  output.line(
    "vservers (libnfs URLs: nfs-ls URL; a file is nfs-cp FILE with its name after the host, nfs://VIP/NAME?...):",
  );
  await report(store, output);
  const env = options.data === "flotilla-data" ? "" : `FLOTILLA_TOKEN_FILE=${tokenFile} `;
  output.line(`admin API: ${admin.url} (bearer token in ${tokenFile})`);
  output.line(`dashboard: ${admin.url}/ui (log in with that token)`);
  output.line(`  try: ${env}npm run flotilla -- status;  ${env}npm run flotilla -- fault kill-node n1`);
  output.line("Ctrl-C stops the cluster cleanly; starting again finds the vservers and their data.");
  const signal = await untilStopSignal();
  output.line(`${signal}: stopping (vservers committed and unmounted, nodes leave)`);
  await admin.close();
  await cluster.stop();
  await store.close();
  output.line("stopped");
  return 0;
}

function parseCount(text: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < 2 || value > 16)
    throw new InvalidArgumentError(`"${text}": 2 to 16 nodes`);
  return value;
}

function parsePort(text: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < 1 || value > 65535)
    throw new InvalidArgumentError(`"${text}" is not a port (1 to 65535)`);
  return value;
}

export function registerClusterUp(program: Command, output: Output = processOutput): void {
  const cluster = program.command("cluster").description("a whole cluster on this machine");
  cluster
    .command("up")
    .description("run a cluster in this process: nodes, storage, vservers on loopback VIPs, the admin API")
    .option("-d, --data <dir>", "where the cluster keeps everything", "flotilla-data")
    .option("--nodes <n>", "how many nodes (2 to 16)", parseCount, 3)
    .option("--nfs-port <port>", "NFS port of the demo vservers (on each VIP)", parsePort, 2049)
    .option("--mount-port <port>", "MOUNT port of the demo vservers", parsePort, 20048)
    .option("--volume-size <size>", "size of each demo volume, e.g. 256M", parseSizeOption, 256 * MiB)
    .option("--lease-ttl <ms>", "a node silent this long is dead", parseMilliseconds, 1000)
    .option("--admin-port <port>", "the admin API's port on 127.0.0.1", parsePort, ADMIN_PORT_DEFAULT)
    .addOption(
      new Option("--log-level <level>", "log level of DATA/flotilla.log")
        .choices(["fatal", "error", "warn", "info", "debug", "trace", "silent"])
        .default("info"),
    )
    .addHelpText(
      "after",
      [
        "",
        "The first start makes two vservers (vs1 on 127.0.1.1 and 127.0.1.2, vs2 on 127.0.2.1 and",
        "127.0.2.2), each on a volume with two replicas, and prints their libnfs URLs.",
        "Ctrl-C (SIGINT) or SIGTERM: every vserver is committed and unmounted, then the nodes stop.",
        "",
        "Example:",
        "  npm start          # the same as: flotilla cluster up",
        "  nfs-ls 'nfs://127.0.1.1/?version=3&nfsport=2049&mountport=20048&auto-traverse-mounts=0'",
      ].join("\n"),
    )
    .action((options: UpOptions) => runVerb("cluster up", 1, output, () => runUp(options, output)));
}
