/**
 * Long-lived TCP connections inside the network lab: a server that accepts and keeps every
 * connection (never writing, as an idle NFS server), and a client whose socket's fate (reset, closed)
 * the test hears as it happens, with the kernel's retransmission state read by `ss`.
 */
import type { ChildProcess } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { type NetworkLab, runLabCommand } from "../../src/net/lab.ts";

/** Starting Node inside a namespace takes a fraction of a second; this bounds a hang. */
const START_MS_MAX = 20_000;
const POLL_MS = 20;

const SERVER_SCRIPT = `const net = require("node:net");
const kept = [];
net.createServer((s) => { s.on("error", () => {}); kept.push(s); })
  .listen(Number(process.argv[2]), process.argv[1], () => console.log("listening"));`;
const CLIENT_SCRIPT = `const s = require("node:net").connect({ host: process.argv[1], port: Number(process.argv[2]) });
s.on("connect", () => console.log("connected " + s.localPort));
s.on("error", (e) => console.log("error " + e.code));
s.on("close", () => console.log("closed"));
process.stdin.setEncoding("utf8").on("data", () => s.write("x"));`;

/** The lines a child prints, as they come, with a bounded wait for the next one. */
class Lines {
  private readonly queued: string[] = [];
  private waiter: ((line: string) => void) | undefined;

  constructor(child: ChildProcess) {
    let partial = "";
    child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
      const parts = (partial + chunk).split("\n");
      partial = parts.pop() ?? "";
      for (const line of parts) this.push(line);
    });
    child.once("exit", (code, signal) => this.push(`exited ${code ?? signal}`));
  }

  private push(line: string): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    if (waiter === undefined) this.queued.push(line);
    else waiter(line);
  }

  /** The next line, or undefined when none comes within `timeoutMs`. */
  async next(timeoutMs: number): Promise<string | undefined> {
    const queued = this.queued.shift();
    if (queued !== undefined) return queued;
    const controller = new AbortController();
    const line = new Promise<string>((resolve) => {
      this.waiter = resolve;
    });
    const timeout = sleep(timeoutMs, undefined, { signal: controller.signal }).catch(() => undefined);
    const result = await Promise.race([line, timeout]);
    controller.abort();
    if (result === undefined) this.waiter = undefined;
    return result;
  }
}

/** Starts `script` with `host port` in `namespace` and waits for its first line to match `ready`; kills it if not. */
async function startScript(
  lab: NetworkLab,
  namespace: string,
  script: string,
  address: { readonly host: string; readonly port: number },
  ready: RegExp,
): Promise<{ child: ChildProcess; lines: Lines; match: RegExpExecArray }> {
  const child = lab.exec(namespace, [process.execPath, "-e", script, address.host, String(address.port)], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const lines = new Lines(child);
  const line = await lines.next(START_MS_MAX);
  const match = ready.exec(line ?? "");
  if (match === null) {
    child.kill("SIGKILL");
    throw new Error(
      `${address.host}:${address.port} in ${namespace}: expected ${ready}, got ${JSON.stringify(line)}`,
    );
  }
  return { child, lines, match };
}

/** A server listening on `host:port` (an address of `namespace`) that keeps every connection. The caller kills it. */
export async function startKeepingServer(
  lab: NetworkLab,
  namespace: string,
  host: string,
  port: number,
): Promise<ChildProcess> {
  return (await startScript(lab, namespace, SERVER_SCRIPT, { host, port }, /^listening$/)).child;
}

export interface LabTcpClient {
  readonly child: ChildProcess;
  readonly localPort: number;
  /** Sends a byte. */
  write(): void;
  /** What happened to the socket next ("error ECONNRESET", "closed"), or undefined when nothing did in time. */
  next(timeoutMs: number): Promise<string | undefined>;
}

/** A client connected from `namespace` to `host:port`. The caller kills it. */
export async function connectClient(
  lab: NetworkLab,
  namespace: string,
  host: string,
  port: number,
): Promise<LabTcpClient> {
  const { child, lines, match } = await startScript(
    lab,
    namespace,
    CLIENT_SCRIPT,
    { host, port },
    /^connected (\d+)$/,
  );
  return {
    child,
    localPort: Number(match[1]),
    write: () => child.stdin?.write("write\n"),
    next: (timeoutMs) => lines.next(timeoutMs),
  };
}

export interface RetransmitState {
  /** How many times the unacknowledged data was sent again. */
  readonly retransmitCount: number;
  /** When the next retransmission is due. */
  readonly timerMs: number;
}

/**
 * The retransmission timer of `ss -o`, or undefined when none runs. ss writes the time as minutes,
 * seconds and milliseconds run together, the seconds followed by "." when milliseconds follow:
 * `timer:(on,800ms,3)`, `timer:(on,2.916ms,4)` (2916 ms), `timer:(on,3sec,4)`, `timer:(on,1min5sec,9)`.
 */
export function parseRetransmitTimer(ssLine: string): RetransmitState | undefined {
  const match = /timer:\(on,(?:(\d+)min)?(?:(\d+)(?:sec|\.))?(?:(\d+)ms)?,(\d+)\)/.exec(ssLine);
  if (match === null) return undefined;
  const [, minutes = "0", seconds = "0", milliseconds = "0", count] = match;
  return {
    retransmitCount: Number(count),
    timerMs: Number(minutes) * 60_000 + Number(seconds) * 1000 + Number(milliseconds),
  };
}

/** `ss` of the established connection from `namespace`'s `localPort` (empty when there is none). */
function ssOf(namespace: string, localPort: number, flags: "-tnH" | "-tnoH"): Promise<string> {
  const filter = ["state", "established", "sport", "=", `:${localPort}`];
  return runLabCommand(["ip", "netns", "exec", namespace, "ss", flags, ...filter]);
}

/** The retransmission state of the connection from `namespace`'s `localPort` (undefined: none, or no such connection). */
export async function retransmitState(
  namespace: string,
  localPort: number,
): Promise<RetransmitState | undefined> {
  return parseRetransmitTimer(await ssOf(namespace, localPort, "-tnoH"));
}

/** Waits until the connection has retransmitted at least `count` times; its state then. */
export async function untilRetransmitted(
  namespace: string,
  localPort: number,
  count: number,
  timeoutMs: number,
): Promise<RetransmitState> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const state = await retransmitState(namespace, localPort);
    if (state !== undefined && state.retransmitCount >= count) return state;
    if (performance.now() > deadline)
      throw new Error(
        `the connection from port ${localPort} retransmitted ${state?.retransmitCount ?? 0} times in ${timeoutMs} ms, not ${count}`,
      );
    await sleep(POLL_MS);
  }
}

/** Whether the connection from `namespace`'s `localPort` is still established. */
export async function isEstablished(namespace: string, localPort: number): Promise<boolean> {
  return (await ssOf(namespace, localPort, "-tnH")).trim() !== "";
}
