import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { onPath } from "../integration/tools.ts";

/** etcd answers within a second or two of starting; this only bounds a hang. */
const START_MS_MAX = 20_000;
/** Each readiness probe: a loopback HTTP request to a live etcd takes milliseconds. */
const PROBE_MS_MAX = 500;
const PROBE_INTERVAL_MS = 50;
/** SIGTERM makes etcd close its database and exit at once; this bounds a hang before SIGKILL. */
const STOP_MS_MAX = 10_000;
/** SIGSTOP takes effect in microseconds; this bounds waiting to see it in /proc. */
const PAUSE_MS_MAX = 5_000;
/** How much of etcd's log is kept for failure messages (the tail). */
const LOG_CHARS_MAX = 32 * 1024;

export interface EtcdProcess extends AsyncDisposable {
  /** The client URL, for `EtcdStore.connect({ endpoints: [endpoint] })`. */
  readonly endpoint: string;
  readonly dataDir: string;
  /** Whether etcd is running now (started and not killed). */
  readonly running: boolean;
  /** Sends `signal` (default SIGKILL) and waits for etcd to exit; its data directory stays. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts etcd again on the same ports and data directory, and waits until it answers. */
  start(): Promise<void>;
  /**
   * Freezes etcd (SIGSTOP): its sockets stay open but nothing answers. Resolves once every thread
   * of etcd is stopped: kill(2) returns before a thread running on another core has stopped.
   */
  pause(): Promise<void>;
  resume(): void;
  /** Kills etcd and removes its data directory. */
  stop(): Promise<void>;
  /** The tail of etcd's log, for failure messages. */
  log(): string;
}

/**
 * Why the etcd tests cannot run here, or undefined when they can. As for the other integration
 * tests (`integrationSkipReason` in test/integration/tools.ts): skipped with the reason printed on a
 * developer's machine without etcd, never skipped in CI (CI set), where .ci/run installs it and
 * `startEtcd` then fails loudly if it is missing.
 */
export function etcdSkipReason(): string | undefined {
  if (onPath("etcd") || process.env.CI) return undefined;
  const reason = "etcd not on PATH (install the Debian package etcd-server; CI does so in .ci/run)";
  process.stderr.write(`skipping etcd tests: ${reason}\n`);
  return reason;
}

/** `count` distinct free loopback ports: bound all at once by the kernel's choice, then released for etcd. */
async function freePorts(count: number): Promise<number[]> {
  const servers = Array.from({ length: count }, () => createServer().listen(0, "127.0.0.1"));
  try {
    await Promise.all(servers.map((server) => once(server, "listening")));
    return servers.map((server) => {
      const address = server.address();
      if (address === null || typeof address === "string") throw new Error("no TCP address for a free port");
      return address.port;
    });
  } finally {
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  }
}

/** etcd's flags: one member on loopback, with a short raft tick so that a 1 s lease TTL is allowed. */
function etcdArgs(dataDir: string, clientPort: number, peerPort: number, host: string): string[] {
  const client = `http://${host}:${clientPort}`;
  const peer = `http://${host}:${peerPort}`;
  return [
    ["--name", "default"],
    ["--data-dir", dataDir],
    ["--listen-client-urls", client],
    ["--advertise-client-urls", client],
    ["--listen-peer-urls", peer],
    ["--initial-advertise-peer-urls", peer],
    ["--initial-cluster", `default=${peer}`],
    // etcd's least lease TTL is 1.5 election timeouts rounded up to a second: 2 s by default, 1 s here.
    ["--heartbeat-interval", "10"],
    ["--election-timeout", "100"],
    ["--logger", "zap"],
    ["--log-outputs", "stderr"],
  ].flat();
}

/** Whether every thread of process `pid` is in the stopped state ("T" in /proc/PID/task/TID/stat). */
async function allThreadsStopped(pid: number): Promise<boolean> {
  const tasks = await readdir(`/proc/${pid}/task`);
  for (const tid of tasks) {
    const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, "utf8").catch(() => "");
    // The state follows the command name, which is in parentheses and may itself hold spaces.
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    if (state !== "" && state !== "T" && state !== "t") return false;
  }
  return true;
}

/** Whether etcd answers its health check with a leader elected. */
async function healthy(endpoint: string): Promise<boolean> {
  try {
    const response = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(PROBE_MS_MAX) });
    const body: unknown = await response.json();
    return typeof body === "object" && body !== null && "health" in body && body.health === "true";
  } catch {
    return false;
  }
}

/** One etcd process at a time on fixed ports and data directory: started, killed, started again. */
class EtcdMember implements EtcdProcess {
  readonly endpoint: string;
  readonly dataDir: string;
  private readonly args: readonly string[];
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private logTail = "";

  constructor(dataDir: string, clientPort: number, peerPort: number, host: string) {
    this.dataDir = dataDir;
    this.endpoint = `http://${host}:${clientPort}`;
    this.args = etcdArgs(join(dataDir, "member"), clientPort, peerPort, host);
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  log(): string {
    return this.logTail;
  }

  async start(): Promise<void> {
    if (this.child !== undefined) return;
    const child = spawn("etcd", this.args, { stdio: ["ignore", "ignore", "pipe"] });
    this.child = child;
    let failure: string | undefined;
    this.exited = new Promise((resolve) => {
      child.on("error", (error) => {
        failure ??= `could not start: ${error.message}`;
        resolve();
      });
      child.on("exit", (code, signal) => {
        failure ??= `exited (${signal ?? code})`;
        if (this.child === child) this.child = undefined;
        resolve();
      });
    });
    child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
      this.logTail = (this.logTail + chunk).slice(-LOG_CHARS_MAX);
    });
    const deadlineMs = performance.now() + START_MS_MAX;
    while (performance.now() < deadlineMs) {
      if (failure !== undefined) throw new Error(`etcd ${failure}\n--- etcd log ---\n${this.logTail}`);
      if (await healthy(this.endpoint)) return;
      await delay(PROBE_INTERVAL_MS);
    }
    await this.kill();
    throw new Error(`etcd did not answer within ${START_MS_MAX} ms\n--- etcd log ---\n${this.logTail}`);
  }

  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const child = this.child;
    if (child === undefined) return;
    this.child = undefined;
    // A paused etcd would not act on SIGTERM until continued.
    child.kill("SIGCONT");
    child.kill(signal);
    const timeout = new AbortController();
    const outcome = await Promise.race([
      this.exited.then(() => "exited"),
      delay(STOP_MS_MAX, "timeout", { signal: timeout.signal }),
    ]);
    // The timer would otherwise hold the test process open for its whole length.
    timeout.abort();
    if (outcome === "timeout") {
      child.kill("SIGKILL");
      await this.exited;
    }
  }

  async pause(): Promise<void> {
    const pid = this.child?.pid;
    if (pid === undefined) return;
    this.child?.kill("SIGSTOP");
    const deadlineMs = performance.now() + PAUSE_MS_MAX;
    while (!(await allThreadsStopped(pid))) {
      if (performance.now() > deadlineMs)
        throw new Error(`etcd (pid ${pid}) did not stop within ${PAUSE_MS_MAX} ms`);
      await delay(1);
    }
  }

  resume(): void {
    this.child?.kill("SIGCONT");
  }

  async stop(): Promise<void> {
    await this.kill();
    await rm(this.dataDir, { recursive: true, force: true });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/**
 * Starts a single-member etcd of its own (Debian's `etcd` binary) on free ports with a fresh data
 * directory, and resolves once it answers. It never uses a system etcd on 2379. It listens on
 * loopback, or on `host` (an address of this host, e.g. a network lab's host link).
 */
export async function startEtcd(host = "127.0.0.1"): Promise<EtcdProcess> {
  const dataDir = await mkdtemp(join(tmpdir(), "flotilla-etcd-"));
  const [clientPort, peerPort] = await freePorts(2);
  const member = new EtcdMember(dataDir, clientPort!, peerPort!, host);
  try {
    await member.start();
  } catch (error) {
    await member.stop();
    throw error;
  }
  return member;
}
