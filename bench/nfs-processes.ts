/**
 * Child processes for bench/nfs.ts: started so that they die with the bench, keeping the end of
 * their output for failure reports; commands run to completion with a time limit; polling a
 * condition until a process is ready.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { connect } from "node:net";
import { dirname, resolve } from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const LOOPBACK = "127.0.0.1";
export const COMMAND_MS_MAX = 120_000;
export const LOG_TAIL_LINES_MAX = 60;
const SERVER_START_MS_MAX = 60_000;
const SERVER_STOP_MS_MAX = 60_000;

/** Progress goes to stderr, results to stdout. */
export function say(text: string): void {
  process.stderr.write(`bench:nfs: ${text}\n`);
}

/** A child process that keeps the last lines of its output for error messages. */
export interface Child {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly exited: Promise<number | string>;
  readonly tail: string[];
  readonly stdoutLines: string[];
}

const children = new Set<Child>();

/** Starts a process that dies with this one (PR_SET_PDEATHSIG through setpriv) if we are killed. */
export function startChild(name: string, command: string, args: readonly string[]): Child {
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
export async function stopChild(child: Child, graceMs = SERVER_STOP_MS_MAX): Promise<number | string> {
  if (child.proc.exitCode === null && child.proc.signalCode === null) child.proc.kill("SIGTERM");
  const outcome = await Promise.race([child.exited, sleep(graceMs, "timeout" as const, { ref: false })]);
  if (outcome !== "timeout") return outcome;
  say(`${child.name} did not stop within ${graceMs} ms: killing it`);
  child.proc.kill("SIGKILL");
  return child.exited;
}

export async function stopAll(): Promise<void> {
  await Promise.all([...children].map((child) => stopChild(child, 10_000)));
}

export function killAllNow(): void {
  for (const child of children) child.proc.kill("SIGKILL");
}

/** Runs a command to completion with a time limit; throws with its output if it fails. */
export function runCommand(command: string, args: readonly string[], timeoutMs = COMMAND_MS_MAX): string {
  const result = spawnSync(command, args, { encoding: "utf8", timeout: timeoutMs });
  if (result.error !== undefined) throw new Error(`${command}: ${result.error.message}`);
  if (result.status !== 0)
    throw new Error(
      `${command} ${args.join(" ")} exited ${result.status ?? result.signal}:\n${result.stderr}`,
    );
  return result.stdout;
}

export function portOpen(port: number): Promise<boolean> {
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
export async function waitUntil(child: Child, what: string, ready: () => Promise<boolean>): Promise<void> {
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
