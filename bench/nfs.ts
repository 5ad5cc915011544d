/**
 * NFS server benchmark: `flotilla serve` beside nfs-ganesha (VFS FSAL), and a vserver of a running
 * Flotilla cluster beside `flotilla serve`, same client, same sizes, N runs of everything.
 *
 *   npm run bench:nfs               full run (1 GiB file, 10,000 small files, 3 runs)
 *   npm run bench:nfs -- --quick    scaled down (128 MiB, 1,000 files, 1 run)
 *
 * Flags: --runs N (how many times the whole comparison runs; each figure is the median of the runs,
 * printed beside every run's value), --mib N (file size), --files N, --file-bytes N (written into
 * each small file), --inflight N (calls in flight), --chunk-kib N (READ/WRITE size), --no-cluster
 * (skip the cluster), --profile always|auto|never (a CPU profile of `flotilla serve`, taken once
 * after the runs: auto takes one for each part with a median short of ganesha), --dir PATH (temp
 * space).
 *
 * The cluster is `flotilla cluster up` (three nodes in one process, each with a storage server);
 * the client mounts its vserver vs1 on a loopback VIP, whose volume has two replicas on the
 * storage servers. Its write, read and create+stat+remove are printed as ratios cluster/serve
 * against the goal of 0.7.
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
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import {
  COMMAND_MS_MAX,
  killAllNow,
  REPO,
  runCommand,
  say,
  startChild,
  stopAll,
  stopChild,
} from "./nfs-processes.ts";
import { printProfile } from "./nfs-profile.ts";
import {
  type Server,
  type ServerName,
  setUpNamespace,
  startCluster,
  startFlotilla,
  startGanesha,
  startRpcbind,
} from "./nfs-servers.ts";

const CLIENT_SOURCE_DIR = join(REPO, "bench", "nfs-client");
const MB = 1e6;
const MiB = 1024 * 1024;
/** Below this, a Flotilla/ganesha median is marked (and profiled with --profile auto). */
const GANESHA_RATIO_GOAL = 1.0;
/** The goal for a cluster vserver against `flotilla serve` on a local file. */
const CLUSTER_RATIO_GOAL = 0.7;
const DEBIAN_PACKAGES: readonly { readonly name: string; readonly needs: string }[] = [
  { name: "gcc", needs: "/usr/bin/gcc" },
  { name: "libnfs-dev", needs: "/usr/include/nfsc/libnfs-raw-nfs.h" },
  { name: "rpcbind", needs: "/usr/sbin/rpcbind" },
  { name: "nfs-ganesha", needs: "/usr/bin/ganesha.nfsd" },
  { name: "nfs-ganesha-vfs", needs: "" },
];

type ProfileMode = "always" | "auto" | "never";
type Mode = "io" | "files";

interface Settings {
  readonly runs: number;
  readonly cluster: boolean;
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
    allowNegative: true,
    options: {
      quick: { type: "boolean", default: false },
      runs: { type: "string" },
      cluster: { type: "boolean", default: true },
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
    runs: int(values.runs, quick ? 1 : 3, "runs", 1),
    cluster: values.cluster,
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

/** The servers of one run, in the order they run. */
function serverNames(s: Settings): readonly ServerName[] {
  return s.cluster ? ["flotilla", "ganesha", "cluster"] : ["flotilla", "ganesha"];
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
    // Generous: every server run even at 10 MB/s and 200 files/s, and two profiled reruns.
    const serverRunMs = ((s.mib * MiB) / (10 * MB)) * 2_000 + (s.files / 200) * 3_000;
    const timeoutMs = 600_000 + serverRunMs * (s.runs * serverNames(s).length + 2);
    const outcome = await runInner(work, timeoutMs);
    if (outcome !== 0) process.exitCode = 1;
    if (outcome !== 0) say(`the benchmark failed (${outcome})`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
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
    ...[
      "--host",
      endpoint.host,
      "--nfs-port",
      `${endpoint.nfsPort}`,
      "--mount-port",
      `${endpoint.mountPort}`,
    ],
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

function startServer(
  s: Settings,
  work: string,
  name: ServerName,
  run: string,
  profileDir: string | undefined,
): Promise<Server> {
  switch (name) {
    case "flotilla":
      return startFlotilla(work, run, profileDir);
    case "ganesha":
      return startGanesha(work, run);
    case "cluster":
      // Room for the big file twice over: its blocks are written anew, not in place.
      return startCluster(work, run, 2 * s.mib * MiB);
  }
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
  const server = await startServer(s, work, name, run, profileDir);
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
  await rm(server.dir, { recursive: true, force: true }); // the next run's page cache and disk
  return phases;
}

// ---- figures ----

interface Figure {
  readonly label: string;
  readonly unit: string;
  readonly mode: Mode;
  /** Also compared between a cluster vserver and `flotilla serve`. */
  readonly cluster: boolean;
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
  const io = { unit: "MB/s", mode: "io" } as const;
  const files = { unit: "ops/s", mode: "files" } as const;
  return [
    { label: "sequential write (+ COMMIT)", ...io, cluster: true, value: mbPerSec("write") },
    { label: "sequential read", ...io, cluster: true, value: mbPerSec("read") },
    { label: `create (CREATE${written})`, ...files, cluster: false, value: opsPerSec("create") },
    { label: "stat (LOOKUP)", ...files, cluster: false, value: opsPerSec("stat") },
    { label: "remove (REMOVE)", ...files, cluster: false, value: opsPerSec("remove") },
    { label: "create + stat + remove", ...files, cluster: true, value: cyclePerSec },
  ];
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Three significant digits or more: the runs differ in the second. */
function rate(value: number): string {
  return value.toFixed(value < 100 ? 1 : 0);
}

/** One server's results, one Phases per run. */
interface Series {
  readonly name: string;
  readonly runs: readonly Phases[];
}

/**
 * Prints a figure: each side's median with every run's value in brackets (when there is more than
 * one run), and the ratio of the medians, marked when it is under the goal. Returns the ratio.
 */
function reportFigure(figure: Figure, ours: Series, theirs: Series, goal: number): number {
  const side = (series: Series) => {
    const values = series.runs.map(figure.value);
    const runs = values.length > 1 ? ` [${values.map((v) => rate(v).padStart(6)).join(" ")}]` : "";
    const shown = `${rate(median(values)).padStart(7)} ${figure.unit.padEnd(5)}${runs}`;
    return { median: median(values), text: `${series.name.padEnd(8)} ${shown}` };
  };
  const a = side(ours);
  const b = side(theirs);
  const ratio = a.median / b.median;
  const mark = ratio < goal ? `  < ${goal.toFixed(1)}` : "";
  process.stdout.write(
    `  ${figure.label.padEnd(30)} ${a.text}   ${b.text}   ${ours.name}/${theirs.name} ${ratio.toFixed(2)}${mark}\n`,
  );
  return ratio;
}

function sectionTitle(s: Settings, mode: Mode): string {
  return mode === "io"
    ? `(a) one ${s.mib} MiB file, ${s.chunkKib} KiB calls`
    : `(b) ${s.files} small files (${s.fileBytes} bytes each) in one directory`;
}

/** Flotilla serve against ganesha, every figure; returns the modes with a ratio under the goal. */
function printGaneshaComparison(s: Settings, flotilla: Series, ganesha: Series): Set<Mode> {
  const short = new Set<Mode>();
  let section: Mode | undefined;
  for (const figure of figures(s)) {
    if (figure.mode !== section) {
      section = figure.mode;
      process.stdout.write(`${sectionTitle(s, section)}\n`);
    }
    if (reportFigure(figure, flotilla, ganesha, GANESHA_RATIO_GOAL) < GANESHA_RATIO_GOAL)
      short.add(figure.mode);
  }
  return short;
}

function printClusterComparison(s: Settings, cluster: Series, serve: Series): void {
  process.stdout.write(
    `(c) a vserver of flotilla cluster up (${s.mib} MiB file and ${s.files} files as above; remote volume, ` +
      `2 replicas) against flotilla serve (local file); goal ${cluster.name}/${serve.name} >= ${CLUSTER_RATIO_GOAL}\n`,
  );
  for (const figure of figures(s).filter((f) => f.cluster))
    reportFigure(figure, cluster, serve, CLUSTER_RATIO_GOAL);
}

// ---- the CPU profile ----

async function profileRun(s: Settings, work: string, client: string, mode: Mode): Promise<void> {
  const profileDir = join(work, `profile-${mode}`);
  await mkdir(profileDir, { recursive: true });
  const phases = await measure(s, work, client, "flotilla", [mode], `profile-${mode}`, profileDir);
  const rates = figures(s)
    .filter((f) => f.mode === mode)
    .map((f) => `${f.label} ${f.value(phases).toFixed(1)} ${f.unit}`);
  process.stdout.write(`\nFlotilla CPU profile, ${mode} run under --cpu-prof (${rates.join("; ")}):\n`);
  const windows = [...phases].map(([label, r]) => ({ label, startUs: r.startUs, endUs: r.endUs }));
  await printProfile(profileDir, windows);
}

// ---- inside the namespace: the runs ----

const MODES: readonly Mode[] = ["io", "files"];

/** Every server of a run, one after the other, s.runs times; one Phases per run for each. */
async function measureRuns(s: Settings, work: string, client: string): Promise<Map<ServerName, Phases[]>> {
  const results = new Map<ServerName, Phases[]>(serverNames(s).map((name) => [name, []]));
  for (let run = 1; run <= s.runs; run++) {
    say(`run ${run} of ${s.runs}`);
    for (const [name, runs] of results) runs.push(await measure(s, work, client, name, MODES, `run-${run}`));
  }
  return results;
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
    const results = await measureRuns(s, work, client);
    const series = (name: string, server: ServerName): Series => ({ name, runs: results.get(server) ?? [] });
    const runs = s.runs > 1 ? `median of ${s.runs} runs, each run's value in brackets` : "one run";
    process.stdout.write(
      `\nFlotilla vs nfs-ganesha ${ganeshaVersion} (VFS FSAL), NFSv3 over one TCP connection on loopback, ` +
        `${s.inflight} calls in flight; ${runs}; temp space in ${s.dir}\n\n`,
    );
    const short = printGaneshaComparison(s, series("Flotilla", "flotilla"), series("ganesha", "ganesha"));
    if (s.cluster) printClusterComparison(s, series("cluster", "cluster"), series("serve", "flotilla"));
    const profiled = s.profile === "always" ? MODES : s.profile === "never" ? [] : [...short];
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
