/**
 * The NFS servers bench/nfs.ts measures, each started inside the private namespace and stopped
 * after its run: nfs-ganesha (VFS FSAL, with the rpcbind it needs), `flotilla serve` on a local
 * file, and a vserver of `flotilla cluster up` (three nodes in one process, each with a storage
 * server, the vserver on a remote volume with two replicas).
 */
import { existsSync, lstatSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  type Child,
  LOG_TAIL_LINES_MAX,
  LOOPBACK,
  portOpen,
  REPO,
  runCommand,
  startChild,
  stopChild,
  waitUntil,
} from "./nfs-processes.ts";

/** Inside the private namespace nothing else listens, so ganesha and the cluster get fixed ports. */
const GANESHA_NFS_PORT = 2049;
const GANESHA_MOUNT_PORT = 20048;
const CLUSTER_NFS_PORT = 2050;
const CLUSTER_MOUNT_PORT = 20049;
const CLUSTER_ADMIN_PORT = 7400;
const CLUSTER_NODE_COUNT = 3;
/** The cluster's demo vserver that the client mounts (cluster up makes vs1 and vs2). */
const CLUSTER_VSERVER = "vs1";
const RPCBIND_PORT = 111;
const MiB = 1024 * 1024;
/** Room on the cluster's volume beyond the big file, for the small files and metadata. */
const CLUSTER_VOLUME_SPARE_BYTES = 256 * MiB;

/** flotilla: `flotilla serve` on a local file; cluster: a vserver of `flotilla cluster up`. */
export type ServerName = "flotilla" | "ganesha" | "cluster";

export interface Endpoint {
  readonly host: string;
  readonly nfsPort: number;
  readonly mountPort: number;
  readonly exportPath: string;
}

export interface Server {
  readonly name: ServerName;
  readonly endpoint: Endpoint;
  readonly child: Child;
  /** Where it keeps its data and logs; the caller may remove it once the server has stopped. */
  readonly dir: string;
  /** Stops the server and fails if it did not exit cleanly. */
  stop(): Promise<void>;
  /** The end of its log, for a failure's report. */
  logTail(): Promise<string>;
}

export function setUpNamespace(): void {
  runCommand("ip", ["link", "set", "lo", "up"]);
  // A private /run for rpcbind's socket and ganesha's state; /var/run is usually a link to it.
  runCommand("mount", ["-t", "tmpfs", "-o", "size=64m,mode=755", "flotilla-bench-run", "/run"]);
  if (existsSync("/var/run") && !lstatSync("/var/run").isSymbolicLink())
    runCommand("mount", ["-t", "tmpfs", "-o", "size=64m,mode=755", "flotilla-bench-run", "/var/run"]);
}

export async function startRpcbind(): Promise<Child> {
  const child = startChild("rpcbind", "rpcbind", ["-f", "-w"]);
  await waitUntil(child, `rpcbind listening on ${RPCBIND_PORT}`, () => portOpen(RPCBIND_PORT));
  return child;
}

function ganeshaConfig(exportPath: string, recoveryDir: string): string {
  return `# Written by bench/nfs.ts: NFSv3 over TCP only, one VFS export.
NFS_CORE_PARAM {
  Protocols = 3;
  NFS_Port = ${GANESHA_NFS_PORT};
  MNT_Port = ${GANESHA_MOUNT_PORT};
  Enable_NLM = false;
  Enable_RQUOTA = false;
  Enable_UDP = false;
}
NFSV4 {
  Graceless = true;
  RecoveryBackend = fs;
  RecoveryRoot = "${recoveryDir}";
}
EXPORT {
  Export_Id = 1;
  Path = "${exportPath}";
  Pseudo = "/bench";
  Protocols = 3;
  Transports = TCP;
  Access_Type = RW;
  Squash = No_Root_Squash;
  SecType = sys;
  FSAL { Name = VFS; }
}
`;
}

async function logTail(path: string): Promise<string> {
  try {
    const lines = (await readFile(path, "utf8")).trimEnd().split("\n");
    return lines.slice(-LOG_TAIL_LINES_MAX).join("\n");
  } catch {
    return `(no log at ${path})`;
  }
}

export async function startGanesha(work: string, run: string): Promise<Server> {
  const dir = join(work, `ganesha-${run}`);
  const exportPath = join(dir, "export");
  const recoveryDir = join(dir, "recovery");
  const conf = join(dir, "ganesha.conf");
  const log = join(dir, "ganesha.log");
  await mkdir(exportPath, { recursive: true });
  await mkdir(recoveryDir, { recursive: true });
  await writeFile(conf, ganeshaConfig(exportPath, recoveryDir));
  const args = ["-F", "-f", conf, "-L", log, "-p", join(dir, "ganesha.pid"), "-N", "NIV_EVENT"];
  const child = startChild("ganesha", "ganesha.nfsd", args);
  const initialized = async () =>
    (await readFile(log, "utf8").catch(() => "")).includes("NFS SERVER INITIALIZED") &&
    (await portOpen(GANESHA_NFS_PORT)) &&
    (await portOpen(GANESHA_MOUNT_PORT));
  try {
    await waitUntil(child, "NFS SERVER INITIALIZED", initialized);
  } catch (error) {
    await stopChild(child, 5_000);
    process.stderr.write(`ganesha's log (${log}):\n${await logTail(log)}\n`);
    throw error;
  }
  const stop = async () => {
    const outcome = await stopChild(child);
    if (outcome !== 0) {
      process.stderr.write(`ganesha's log (${log}):\n${await logTail(log)}\n`);
      throw new Error(`ganesha exited ${outcome}`);
    }
  };
  const endpoint = { host: LOOPBACK, nfsPort: GANESHA_NFS_PORT, mountPort: GANESHA_MOUNT_PORT, exportPath };
  const tail = async () => `(${log}):\n${await logTail(log)}`;
  return { name: "ganesha", endpoint, child, dir, stop, logTail: tail };
}

/** The endpoint in the first libnfs URL on the line (nfs://HOST/?...nfsport=N&mountport=M...). */
function urlEndpoint(line: string): Endpoint | undefined {
  const text = /nfs:\/\/\S+/.exec(line)?.[0];
  if (text === undefined) return undefined;
  const url = new URL(text);
  const nfsPort = Number(url.searchParams.get("nfsport"));
  const mountPort = Number(url.searchParams.get("mountport"));
  if (!(nfsPort > 0 && mountPort > 0)) throw new Error(`no nfsport and mountport in ${text}`);
  return { host: url.hostname, nfsPort, mountPort, exportPath: "/" };
}

interface FlotillaStart {
  readonly name: ServerName;
  readonly dir: string;
  /** Options to Node itself (--cpu-prof). */
  readonly nodeArgs: readonly string[];
  /** The verb and its options. */
  readonly args: readonly string[];
  /** The endpoint to measure once the output says the server is ready; undefined until then. */
  readonly endpointOf: (stdoutLines: readonly string[]) => Endpoint | undefined;
  readonly logFile?: string;
}

/** Runs a serving `flotilla` verb until its output names the endpoint; SIGTERM stops it. */
async function startFlotillaVerb(start: FlotillaStart): Promise<Server> {
  const script = join(REPO, "src", "cli", "main.ts");
  const child = startChild(start.name, process.execPath, [...start.nodeArgs, script, ...start.args]);
  const output = async () => {
    const log = start.logFile === undefined ? "" : `\n${start.logFile}:\n${await logTail(start.logFile)}`;
    return `(its output):\n${child.tail.join("\n")}${log}`;
  };
  let endpoint: Endpoint | undefined;
  const announced = async () => {
    endpoint = start.endpointOf(child.stdoutLines);
    return endpoint !== undefined;
  };
  try {
    await waitUntil(child, "its libnfs URL", announced);
  } catch (error) {
    await stopChild(child, 5_000);
    process.stderr.write(`${start.name}'s log ${await output()}\n`);
    throw error;
  }
  const stop = async () => {
    const outcome = await stopChild(child);
    if (outcome !== 0) {
      process.stderr.write(`${start.name}'s log ${await output()}\n`);
      throw new Error(`${start.name} exited ${outcome}`);
    }
  };
  return { name: start.name, endpoint: endpoint!, child, dir: start.dir, stop, logTail: output };
}

/** `flotilla serve` on an 8 GiB local file, on ports of its choosing, without a portmapper. */
export async function startFlotilla(
  work: string,
  run: string,
  profileDir: string | undefined,
): Promise<Server> {
  const dir = join(work, `flotilla-${run}`);
  await mkdir(dir, { recursive: true });
  const serve = ["serve", "--data", dir, "--nfs-port", "0", "--mount-port", "0", "--portmap-port", "off"];
  const rest = ["--size", "8G", "--export", `${LOOPBACK}(rw,no_root_squash)`];
  return startFlotillaVerb({
    name: "flotilla",
    dir,
    nodeArgs: profileDir === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${profileDir}`],
    args: [...serve, ...rest],
    endpointOf: (lines) => {
      const line = lines.find((l) => l.startsWith("libnfs URL: "));
      return line === undefined ? undefined : urlEndpoint(line);
    },
  });
}

/**
 * `flotilla cluster up` with a fresh data directory: its first start makes the demo vservers, each
 * on a volume of `volumeBytes` with two replicas on the nodes' storage servers. Ready once it has
 * printed every vserver (running, or not running yet after its wait) and its Ctrl-C line.
 */
export async function startCluster(work: string, run: string, volumeBytes: number): Promise<Server> {
  const dir = join(work, `cluster-${run}`);
  const volumeMib = Math.ceil((volumeBytes + CLUSTER_VOLUME_SPARE_BYTES) / MiB);
  const ports = ["--nfs-port", `${CLUSTER_NFS_PORT}`, "--mount-port", `${CLUSTER_MOUNT_PORT}`];
  const rest = ["--admin-port", `${CLUSTER_ADMIN_PORT}`, "--volume-size", `${volumeMib}M`];
  const vserverLine = new RegExp(`^\\s+${CLUSTER_VSERVER}\\s`);
  return startFlotillaVerb({
    name: "cluster",
    dir,
    nodeArgs: [],
    args: ["cluster", "up", "--data", dir, "--nodes", `${CLUSTER_NODE_COUNT}`, ...ports, ...rest],
    logFile: join(dir, "flotilla.log"),
    endpointOf: (lines) => {
      if (!lines.some((l) => l.startsWith("Ctrl-C stops"))) return undefined;
      const line = lines.find((l) => vserverLine.test(l));
      const endpoint = line === undefined ? undefined : urlEndpoint(line);
      if (endpoint === undefined)
        throw new Error(`cluster up printed no URL for ${CLUSTER_VSERVER}: ${line}`);
      return endpoint;
    },
  });
}
