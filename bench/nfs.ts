/**
 * NFS server benchmark: `flotilla serve` beside nfs-ganesha (VFS FSAL), same client, same run.
 *
 *   npm run bench:nfs               full run (1 GiB file, 10,000 small files)
 *   npm run bench:nfs -- --quick    scaled down (128 MiB, 1,000 files)
 *
 * Flags: --mib N (file size), --files N, --file-bytes N (written into each small file), --inflight N
 * (calls in flight), --chunk-kib N (READ/WRITE size), --profile always|auto|never (a CPU profile of
 * Flotilla: auto takes one when a figure falls short of ganesha), --dir PATH (temp space).
 *
 * Needs root (for `unshare`), gcc, libnfs-dev, rpcbind, nfs-ganesha and nfs-ganesha-vfs; missing
 * Debian packages are installed with apt-get. The client is bench/nfs-client/nfs-bench.c on libnfs's
 * async RPC API, built here with gcc: it keeps many calls in flight on one TCP connection, so the
 * servers are measured rather than the round trips.
 *
 * Everything that listens runs inside one `unshare -m -n` (a private loopback and a tmpfs on /run),
 * where this script runs itself again with --inner: a private rpcbind (ganesha will not start
 * without one), ganesha, Flotilla and the client never meet the host's services or ports. Results go
 * to stdout, progress to stderr. Processes and temp files are removed at the end, also on failure.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, lstatSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const CLIENT_SOURCE_DIR = join(REPO, "bench", "nfs-client");
const LOOPBACK = "127.0.0.1";
/** Inside the private namespace nothing else listens, so ganesha gets fixed ports. */
const GANESHA_NFS_PORT = 2049;
const GANESHA_MOUNT_PORT = 20048;
const RPCBIND_PORT = 111;
const SERVER_START_MS_MAX = 60_000;
const SERVER_STOP_MS_MAX = 60_000;
const COMMAND_MS_MAX = 120_000;
const LOG_TAIL_LINES_MAX = 60;
const PROFILE_FUNCTIONS_MAX = 25;
const PROFILE_FILES_MAX = 12;
const MB = 1e6;
const DEBIAN_PACKAGES: readonly { readonly name: string; readonly needs: string }[] = [
  { name: "gcc", needs: "/usr/bin/gcc" },
  { name: "libnfs-dev", needs: "/usr/include/nfsc/libnfs-raw-nfs.h" },
  { name: "rpcbind", needs: "/usr/sbin/rpcbind" },
  { name: "nfs-ganesha", needs: "/usr/bin/ganesha.nfsd" },
  { name: "nfs-ganesha-vfs", needs: "" },
];

type ProfileMode = "always" | "auto" | "never";
type Mode = "io" | "files";
type ServerName = "flotilla" | "ganesha";

interface Settings {
  readonly mib: number;
  readonly files: number;
  readonly fileBytes: number;
  readonly inflight: number;
  readonly chunkKib: number;
  readonly profile: ProfileMode;
  readonly dir: string;
  readonly inner: boolean;
  readonly work: string | undefined;
}

function settings(): Settings {
  const { values } = parseArgs({
    options: {
      quick: { type: "boolean", default: false },
      mib: { type: "string" },
      files: { type: "string" },
      "file-bytes": { type: "string" },
      inflight: { type: "string" },
      "chunk-kib": { type: "string" },
      profile: { type: "string", default: "auto" },
      dir: { type: "string" },
      inner: { type: "boolean", default: false },
      work: { type: "string" },
    },
  });
  const quick = values.quick;
  const int = (text: string | undefined, fallback: number, name: string, min: number): number => {
    if (text === undefined) return fallback;
    const value = Number(text);
    if (!Number.isSafeInteger(value) || value < min)
      throw new RangeError(`--${name} must be an integer of at least ${min}, got ${text}`);
    return value;
  };
  const profile = values.profile;
  if (profile !== "always" && profile !== "auto" && profile !== "never")
    throw new RangeError(`--profile must be always, auto or never, got ${profile}`);
  return {
    mib: int(values.mib, quick ? 128 : 1024, "mib", 1),
    files: int(values.files, quick ? 1000 : 10_000, "files", 1),
    fileBytes: int(values["file-bytes"], 100, "file-bytes", 0),
    inflight: int(values.inflight, 32, "inflight", 1),
    chunkKib: int(values["chunk-kib"], 1024, "chunk-kib", 4),
    profile,
    dir: values.dir ?? tmpdir(),
    inner: values.inner,
    work: values.work,
  };
}

function say(text: string): void {
  process.stderr.write(`bench:nfs: ${text}\n`);
}

function report(label: string, value: number, unit: string, ganesha: number): void {
  const ratio = value / ganesha;
  const mark = ratio < 1 ? "  < 1.0" : "";
  process.stdout.write(
    `${label.padEnd(34)} ${value.toFixed(1).padStart(10)} ${unit}   ganesha ${ganesha.toFixed(1).padStart(9)} ` +
      `${unit}   Flotilla/ganesha ${ratio.toFixed(2)}${mark}\n`,
  );
}

// ---- processes ----

/** A child process that keeps the last lines of its output for error messages. */
interface Child {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly exited: Promise<number | string>;
  readonly tail: string[];
  readonly stdoutLines: string[];
}

const children = new Set<Child>();

/** Starts a process that dies with this one (PR_SET_PDEATHSIG through setpriv) if we are killed. */
function startChild(name: string, command: string, args: readonly string[]): Child {
  const proc = spawn("setpriv", ["--pdeathsig", "KILL", "--", command, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const tail: string[] = [];
  const stdoutLines: string[] = [];
  const keep = (line: string) => {
    tail.push(line);
    if (tail.length > LOG_TAIL_LINES_MAX) tail.shift();
  };
  createInterface({ input: proc.stdout! }).on("line", (line) => {
    stdoutLines.push(line);
    keep(line);
  });
  createInterface({ input: proc.stderr! }).on("line", keep);
  const exited = new Promise<number | string>((done) => {
    proc.once("exit", (code, signal) => done(code ?? signal ?? "unknown"));
    proc.once("error", (error) => done(`failed to start: ${error.message}`));
  });
  const child: Child = { name, proc, exited, tail, stdoutLines };
  children.add(child);
  void exited.then(() => children.delete(child));
  return child;
}

/** SIGTERM, then SIGKILL if it has not exited in time; returns how it exited. */
async function stopChild(child: Child, graceMs = SERVER_STOP_MS_MAX): Promise<number | string> {
  if (child.proc.exitCode === null && child.proc.signalCode === null) child.proc.kill("SIGTERM");
  const outcome = await Promise.race([child.exited, sleep(graceMs, "timeout" as const, { ref: false })]);
  if (outcome !== "timeout") return outcome;
  say(`${child.name} did not stop within ${graceMs} ms: killing it`);
  child.proc.kill("SIGKILL");
  return child.exited;
}

async function stopAll(): Promise<void> {
  await Promise.all([...children].map((child) => stopChild(child, 10_000)));
}

function killAllNow(): void {
  for (const child of children) child.proc.kill("SIGKILL");
}

/** Runs a command to completion with a time limit; throws with its output if it fails. */
function runCommand(command: string, args: readonly string[], timeoutMs = COMMAND_MS_MAX): string {
  const result = spawnSync(command, args, { encoding: "utf8", timeout: timeoutMs });
  if (result.error !== undefined) throw new Error(`${command}: ${result.error.message}`);
  if (result.status !== 0)
    throw new Error(
      `${command} ${args.join(" ")} exited ${result.status ?? result.signal}:\n${result.stderr}`,
    );
  return result.stdout;
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect({ host: LOOPBACK, port });
    socket.once("connect", () => {
      socket.destroy();
      done(true);
    });
    socket.once("error", () => done(false));
  });
}

/** Polls until ready() holds; fails early if the child exits, or after timeoutMs. */
async function waitUntil(child: Child, what: string, ready: () => Promise<boolean>): Promise<void> {
  const start = performance.now();
  let exit: number | string | undefined;
  void child.exited.then((outcome) => {
    exit = outcome;
  });
  while (!(await ready())) {
    if (exit !== undefined) throw new Error(`${child.name} exited (${exit}) before ${what}`);
    if (performance.now() - start > SERVER_START_MS_MAX)
      throw new Error(`${child.name}: no ${what} within ${SERVER_START_MS_MAX} ms`);
    await sleep(50);
  }
}

// ---- outside the namespace: packages, client, the namespace itself ----

function packageInstalled(name: string): boolean {
  const format = "-f=$" + "{Status}"; // dpkg-query's field syntax, not a template placeholder
  const result = spawnSync("dpkg-query", ["-W", format, name], { encoding: "utf8" });
  return result.status === 0 && result.stdout.includes("install ok installed");
}

function ensurePackages(): void {
  const missing = DEBIAN_PACKAGES.filter(
    (p) => !packageInstalled(p.name) || (p.needs !== "" && !existsSync(p.needs)),
  ).map((p) => p.name);
  if (missing.length === 0) return;
  say(`installing ${missing.join(" ")} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const result = spawnSync("apt-get", ["install", "-y", ...missing], {
    stdio: "inherit",
    env,
    timeout: 600_000,
  });
  if (result.status !== 0) throw new Error(`apt-get install ${missing.join(" ")} failed (${result.status})`);
}

async function buildClient(work: string): Promise<string> {
  const sources = (await readdir(CLIENT_SOURCE_DIR)).filter((f) => f.endsWith(".c"));
  const binary = join(work, "nfs-bench");
  const args = ["-O2", "-Wall", "-Wextra", "-o", binary, ...sources.map((f) => join(CLIENT_SOURCE_DIR, f))];
  runCommand("gcc", [...args, "-lnfs"]);
  return binary;
}

/** Runs this script again with --inner inside a new mount and network namespace. */
async function runInner(work: string, timeoutMs: number): Promise<number | string> {
  const args = [...process.argv.slice(2), "--inner", "--work", work];
  const proc = spawn(
    "unshare",
    ["-m", "-n", "--", process.execPath, fileURLToPath(import.meta.url), ...args],
    {
      stdio: "inherit",
    },
  );
  const exited = new Promise<number | string>((done) => {
    proc.once("exit", (code, signal) => done(code ?? signal ?? "unknown"));
    proc.once("error", (error) => done(`failed to start: ${error.message}`));
  });
  const forward = (signal: NodeJS.Signals) => () => proc.kill(signal);
  const onInt = forward("SIGINT");
  const onTerm = forward("SIGTERM");
  process.on("SIGINT", onInt);
  process.on("SIGTERM", onTerm);
  try {
    const outcome = await Promise.race([exited, sleep(timeoutMs, "timeout" as const, { ref: false })]);
    if (outcome !== "timeout") return outcome;
    say(`the benchmark took longer than ${Math.round(timeoutMs / 1000)} s: stopping it`);
    proc.kill("SIGTERM");
    const late = await Promise.race([exited, sleep(20_000, "timeout" as const, { ref: false })]);
    if (late !== "timeout") return "timeout";
    proc.kill("SIGKILL");
    await exited;
    return "timeout";
  } finally {
    process.off("SIGINT", onInt);
    process.off("SIGTERM", onTerm);
  }
}

async function outer(s: Settings): Promise<void> {
  if (process.getuid?.() !== 0)
    throw new Error("bench:nfs needs root: it runs the servers in `unshare -m -n`");
  ensurePackages();
  const work = await mkdtemp(join(s.dir, "flotilla-nfs-bench-"));
  try {
    say(`building the client in ${work}`);
    await buildClient(work);
    // Generous: even at 10 MB/s and 200 files/s, with two profiled reruns.
    const timeoutMs = 600_000 + ((s.mib * 1024 * 1024) / (10 * MB)) * 6_000 + (s.files / 200) * 6_000;
    const outcome = await runInner(work, timeoutMs);
    if (outcome !== 0) process.exitCode = 1;
    if (outcome !== 0) say(`the benchmark failed (${outcome})`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

// ---- inside the namespace: servers ----

interface Endpoint {
  readonly nfsPort: number;
  readonly mountPort: number;
  readonly exportPath: string;
}

interface Server {
  readonly name: ServerName;
  readonly endpoint: Endpoint;
  readonly child: Child;
  /** Stops the server and fails if it did not exit cleanly. */
  stop(): Promise<void>;
  /** The end of its log, for a failure's report. */
  logTail(): Promise<string>;
}

function setUpNamespace(): void {
  runCommand("ip", ["link", "set", "lo", "up"]);
  // A private /run for rpcbind's socket and ganesha's state; /var/run is usually a link to it.
  runCommand("mount", ["-t", "tmpfs", "-o", "size=64m,mode=755", "flotilla-bench-run", "/run"]);
  if (existsSync("/var/run") && !lstatSync("/var/run").isSymbolicLink())
    runCommand("mount", ["-t", "tmpfs", "-o", "size=64m,mode=755", "flotilla-bench-run", "/var/run"]);
}

async function startRpcbind(): Promise<Child> {
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

async function startGanesha(work: string, run: string): Promise<Server> {
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
  const endpoint = { nfsPort: GANESHA_NFS_PORT, mountPort: GANESHA_MOUNT_PORT, exportPath };
  const tail = async () => `(${log}):\n${await logTail(log)}`;
  return { name: "ganesha", endpoint, child, stop, logTail: tail };
}

function flotillaEndpoint(line: string): Endpoint | undefined {
  const match = /libnfs URL: nfs:\/\/[^/]*\/\?.*nfsport=(\d+).*mountport=(\d+)/.exec(line);
  if (match === null) return undefined;
  return { nfsPort: Number(match[1]), mountPort: Number(match[2]), exportPath: "/" };
}

async function startFlotilla(work: string, run: string, profileDir: string | undefined): Promise<Server> {
  const data = join(work, `flotilla-${run}`);
  await mkdir(data, { recursive: true });
  const profile = profileDir === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${profileDir}`];
  const serve = ["serve", "--data", data, "--nfs-port", "0", "--mount-port", "0", "--portmap-port", "off"];
  const rest = ["--size", "8G", "--export", `${LOOPBACK}(rw,no_root_squash)`];
  const script = join(REPO, "src", "cli", "main.ts");
  const child = startChild("flotilla", process.execPath, [...profile, script, ...serve, ...rest]);
  let endpoint: Endpoint | undefined;
  const announced = async () => {
    for (const line of child.stdoutLines) endpoint ??= flotillaEndpoint(line);
    return endpoint !== undefined;
  };
  try {
    await waitUntil(child, "its libnfs URL", announced);
  } catch (error) {
    await stopChild(child, 5_000);
    process.stderr.write(`flotilla's output:\n${child.tail.join("\n")}\n`);
    throw error;
  }
  const stop = async () => {
    const outcome = await stopChild(child);
    if (outcome !== 0) {
      process.stderr.write(`flotilla's output:\n${child.tail.join("\n")}\n`);
      throw new Error(`flotilla exited ${outcome}`);
    }
  };
  const tail = async () => `(its output):\n${child.tail.join("\n")}`;
  return { name: "flotilla", endpoint: endpoint!, child, stop, logTail: tail };
}

// ---- inside the namespace: the client ----

interface PhaseResult {
  readonly ops: number;
  readonly bytes: number;
  readonly seconds: number;
  /** CLOCK_MONOTONIC, as V8 stamps profile samples. */
  readonly startUs: number;
  readonly endUs: number;
}

type Phases = Map<string, PhaseResult>;

function parseResults(lines: readonly string[]): Phases {
  const phases: Phases = new Map();
  for (const line of lines) {
    if (!line.startsWith("result ")) continue;
    const fields = new Map(
      line
        .slice("result ".length)
        .split(" ")
        .map((pair) => {
          const at = pair.indexOf("=");
          return [pair.slice(0, at), pair.slice(at + 1)] as const;
        }),
    );
    const phase = fields.get("phase");
    const ops = Number(fields.get("ops"));
    const bytes = Number(fields.get("bytes"));
    const seconds = Number(fields.get("seconds"));
    const startUs = Number(fields.get("start_us"));
    const endUs = Number(fields.get("end_us"));
    const numbers = [ops, bytes, startUs, endUs];
    if (phase === undefined || !(seconds > 0) || !numbers.every((n) => Number.isFinite(n)))
      throw new Error(`the client printed a result line we cannot read: ${line}`);
    phases.set(phase, { ops, bytes, seconds, startUs, endUs });
  }
  return phases;
}

async function runClient(s: Settings, client: string, server: Server, mode: Mode): Promise<Phases> {
  const { endpoint } = server;
  const args = [
    ...["--host", LOOPBACK, "--nfs-port", `${endpoint.nfsPort}`, "--mount-port", `${endpoint.mountPort}`],
    ...["--export", endpoint.exportPath, "--mode", mode, "--tag", server.name],
    ...["--mib", `${s.mib}`, "--chunk-kib", `${s.chunkKib}`, "--inflight", `${s.inflight}`],
    ...["--files", `${s.files}`, "--file-bytes", `${s.fileBytes}`],
  ];
  const child = startChild(`nfs-bench (${server.name}, ${mode})`, client, args);
  // The client fails by itself after 60 s without a reply; this bounds a slow but moving run.
  const limitMs = COMMAND_MS_MAX + (mode === "io" ? s.mib * 2_000 : s.files * 50);
  const outcome = await Promise.race([child.exited, sleep(limitMs, "timeout" as const, { ref: false })]);
  if (outcome === "timeout") await stopChild(child, 5_000);
  if (outcome !== 0) {
    process.stderr.write(`${child.tail.join("\n")}\n`);
    throw new Error(`the client failed against ${server.name} (${outcome})`);
  }
  for (const line of child.stdoutLines) if (line.startsWith("info ")) say(line);
  return parseResults(child.stdoutLines);
}

/** Starts a server, runs the client's modes against it, stops it (the profile is written then). */
async function measure(
  s: Settings,
  work: string,
  client: string,
  name: ServerName,
  modes: readonly Mode[],
  run: string,
  profileDir?: string,
): Promise<Phases> {
  runCommand("sync", []); // the previous run's dirty pages should not be written back during this one
  say(`${name}: starting (${run})`);
  const server =
    name === "flotilla" ? await startFlotilla(work, run, profileDir) : await startGanesha(work, run);
  const phases: Phases = new Map();
  try {
    for (const mode of modes) {
      say(
        `${name}: ${mode === "io" ? `${s.mib} MiB write + read` : `${s.files} files create, stat, remove`}`,
      );
      for (const [phase, result] of await runClient(s, client, server, mode)) phases.set(phase, result);
    }
  } catch (error) {
    process.stderr.write(`${name}'s log ${await server.logTail()}\n`);
    throw error;
  } finally {
    await server.stop();
  }
  return phases;
}

// ---- figures ----

interface Figure {
  readonly label: string;
  readonly unit: string;
  readonly mode: Mode;
  readonly value: (phases: Phases) => number;
}

function phase(phases: Phases, name: string): PhaseResult {
  const result = phases.get(name);
  if (result === undefined) throw new Error(`the client reported no ${name} phase`);
  return result;
}

const mbPerSec = (name: string) => (phases: Phases) => {
  const r = phase(phases, name);
  return r.bytes / MB / r.seconds;
};
const opsPerSec = (name: string) => (phases: Phases) => {
  const r = phase(phases, name);
  return r.ops / r.seconds;
};
const cyclePerSec = (phases: Phases) => {
  const parts = ["create", "stat", "remove"].map((name) => phase(phases, name));
  return parts.reduce((sum, r) => sum + r.ops, 0) / parts.reduce((sum, r) => sum + r.seconds, 0);
};

function figures(s: Settings): readonly Figure[] {
  const written = s.fileBytes > 0 ? ` + WRITE ${s.fileBytes} B` : "";
  return [
    { label: "  sequential write (+ COMMIT)", unit: "MB/s", mode: "io", value: mbPerSec("write") },
    { label: "  sequential read", unit: "MB/s", mode: "io", value: mbPerSec("read") },
    { label: `  create (CREATE${written})`, unit: "ops/s", mode: "files", value: opsPerSec("create") },
    { label: "  stat (LOOKUP)", unit: "ops/s", mode: "files", value: opsPerSec("stat") },
    { label: "  remove (REMOVE)", unit: "ops/s", mode: "files", value: opsPerSec("remove") },
    { label: "  create + stat + remove", unit: "ops/s", mode: "files", value: cyclePerSec },
  ];
}

function printFigures(s: Settings, flotilla: Phases, ganesha: Phases): Set<Mode> {
  const short = new Set<Mode>();
  let section: Mode | undefined;
  for (const figure of figures(s)) {
    if (figure.mode !== section) {
      section = figure.mode;
      process.stdout.write(
        section === "io"
          ? `(a) one ${s.mib} MiB file, ${s.chunkKib} KiB calls\n`
          : `(b) ${s.files} small files (${s.fileBytes} bytes each) in one directory\n`,
      );
    }
    const ours = figure.value(flotilla);
    const theirs = figure.value(ganesha);
    report(figure.label, ours, figure.unit, theirs);
    if (ours < theirs) short.add(figure.mode);
  }
  return short;
}

// ---- the CPU profile ----

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly startTime: number;
  readonly endTime: number;
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

function isCpuProfile(value: unknown): value is CpuProfile {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  const times = typeof v.startTime === "number" && typeof v.endTime === "number";
  return times && Array.isArray(v.nodes) && Array.isArray(v.samples) && Array.isArray(v.timeDeltas);
}

function location(frame: CallFrame): string {
  if (frame.url === "") return "";
  const path = frame.url.startsWith("file://") ? fileURLToPath(frame.url) : frame.url;
  const shown = path.startsWith(`${REPO}/`) ? path.slice(REPO.length + 1) : path;
  return `${shown}:${frame.lineNumber + 1}`;
}

function functionKey(frame: CallFrame): string {
  return `${frame.functionName || "(anonymous)"}  ${location(frame)}`;
}

/** For each profile node, the innermost frame at or above it that is the project's own code. */
function ownFrames(profile: CpuProfile): Map<number, CallFrame> {
  const SRC = `${REPO}/src/`;
  const isOwn = (frame: CallFrame) =>
    frame.url.startsWith("file://") && fileURLToPath(frame.url).startsWith(SRC);
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const own = new Map<number, CallFrame>();
  for (const node of profile.nodes) {
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const frame = byId.get(id)?.callFrame;
      if (frame !== undefined && isOwn(frame)) {
        own.set(node.id, frame);
        break;
      }
    }
  }
  return own;
}

interface Window {
  readonly startUs: number;
  readonly endUs: number;
}

/**
 * Self time per function and per file within the window, from each sample and the time until the
 * next one. Sample times are the profile's startTime plus the running sum of timeDeltas.
 */
function summarize(profile: CpuProfile, window: Window): void {
  const frames = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
  const ownFrame = ownFrames(profile);
  const byFunction = new Map<string, number>();
  const byFile = new Map<string, number>();
  const byOwn = new Map<string, number>();
  let totalUs = 0;
  let idleUs = 0;
  let atUs = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    atUs += profile.timeDeltas[i] ?? 0;
    const frame = frames.get(profile.samples[i]!);
    const us = profile.timeDeltas[i + 1] ?? 0;
    if (frame === undefined || atUs < window.startUs || atUs > window.endUs) continue;
    totalUs += us;
    if (frame.functionName === "(idle)") {
      idleUs += us;
      continue;
    }
    const key = functionKey(frame);
    byFunction.set(key, (byFunction.get(key) ?? 0) + us);
    const file = frame.url === "" ? frame.functionName : location(frame).replace(/:\d+$/, "");
    byFile.set(file, (byFile.get(file) ?? 0) + us);
    const own = ownFrame.get(profile.samples[i]!);
    const ownKey = own === undefined ? "(no Flotilla frame on the stack)" : functionKey(own);
    byOwn.set(ownKey, (byOwn.get(ownKey) ?? 0) + us);
  }
  const busyUs = Math.max(totalUs - idleUs, 1);
  const ms = (us: number) => (us / 1000).toFixed(0).padStart(8);
  const pct = (us: number) => `${((100 * us) / busyUs).toFixed(1).padStart(5)}%`;
  process.stdout.write(
    `  sampled ${ms(totalUs).trim()} ms, idle ${ms(idleUs).trim()} ms, busy ${ms(busyUs).trim()} ms\n` +
      `  top functions by self time (% of busy):\n`,
  );
  const top = (map: Map<string, number>, count: number) =>
    [...map].sort((a, b) => b[1] - a[1]).slice(0, count);
  for (const [key, us] of top(byFunction, PROFILE_FUNCTIONS_MAX))
    process.stdout.write(`  ${ms(us)} ms ${pct(us)}  ${key}\n`);
  process.stdout.write("  by file:\n");
  for (const [key, us] of top(byFile, PROFILE_FILES_MAX))
    process.stdout.write(`  ${ms(us)} ms ${pct(us)}  ${key}\n`);
  process.stdout.write(
    "  by the innermost Flotilla (src/) function on the stack, Node's time under it included:\n",
  );
  for (const [key, us] of top(byOwn, PROFILE_FUNCTIONS_MAX))
    process.stdout.write(`  ${ms(us)} ms ${pct(us)}  ${key}\n`);
}

async function profileRun(s: Settings, work: string, client: string, mode: Mode): Promise<void> {
  const profileDir = join(work, `profile-${mode}`);
  await mkdir(profileDir, { recursive: true });
  const phases = await measure(s, work, client, "flotilla", [mode], `profile-${mode}`, profileDir);
  const files = (await readdir(profileDir)).filter((f) => f.endsWith(".cpuprofile"));
  if (files.length !== 1) throw new Error(`expected one .cpuprofile in ${profileDir}, found ${files.length}`);
  const parsed: unknown = JSON.parse(await readFile(join(profileDir, files[0]!), "utf8"));
  if (!isCpuProfile(parsed)) throw new Error(`${files[0]} is not a V8 CPU profile`);
  const rates = figures(s)
    .filter((f) => f.mode === mode)
    .map((f) => `${f.label.trim()} ${f.value(phases).toFixed(1)} ${f.unit}`);
  process.stdout.write(`\nFlotilla CPU profile, ${mode} run under --cpu-prof (${rates.join("; ")}):\n`);
  const runs = [...phases.values()];
  const measured = {
    startUs: Math.min(...runs.map((r) => r.startUs)),
    endUs: Math.max(...runs.map((r) => r.endUs)),
  };
  // V8 and the client both read CLOCK_MONOTONIC; if that ever stops holding, show the whole run.
  const inside = measured.startUs >= parsed.startTime && measured.endUs <= parsed.endTime;
  process.stdout.write(
    inside
      ? `  the client's measured phases only (${((measured.endUs - measured.startUs) / 1000).toFixed(0)} ms)\n`
      : "  the whole server run (the client's clock does not match the profile's)\n",
  );
  summarize(parsed, inside ? measured : { startUs: -Infinity, endUs: Infinity });
}

async function inner(s: Settings): Promise<void> {
  const work = s.work;
  if (work === undefined) throw new Error("--inner needs --work");
  const client = join(work, "nfs-bench");
  const onSignal = () => {
    killAllNow();
    process.exit(143);
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  try {
    setUpNamespace();
    await startRpcbind();
    const ganeshaVersion = runCommand("ganesha.nfsd", ["-v"]).match(/Release\s*=\s*V?(\S+)/)?.[1] ?? "?";
    const modes: readonly Mode[] = ["io", "files"];
    const flotilla = await measure(s, work, client, "flotilla", modes, "main");
    const ganesha = await measure(s, work, client, "ganesha", modes, "main");
    process.stdout.write(
      `\nFlotilla vs nfs-ganesha ${ganeshaVersion} (VFS FSAL), NFSv3 over one TCP connection on loopback, ` +
        `${s.inflight} calls in flight; temp space in ${s.dir}\n\n`,
    );
    const short = printFigures(s, flotilla, ganesha);
    const profiled = s.profile === "always" ? modes : s.profile === "never" ? [] : [...short];
    for (const mode of profiled) await profileRun(s, work, client, mode);
  } finally {
    await stopAll();
  }
}

try {
  const s = settings();
  if (s.inner) await inner(s);
  else await outer(s);
} catch (error) {
  say(`failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
}
