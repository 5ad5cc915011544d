/**
 * `flotilla` verbs as child processes, for the tests that kill them: spawned with the project's
 * Node, ready once a line on stdout matches, stopped (or killed, stopped, continued) by signal.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const MAIN = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));
/** A start takes a second or two; this bounds a hang. */
const START_MS_MAX = 30_000;
const EXIT_MS_MAX = 30_000;
/** The tail of the output kept to explain a failure: a chatty process must not grow it without end. */
const OUTPUT_CHARS_MAX = 64 * 1024;

export interface FlotillaProcess extends AsyncDisposable {
  readonly pid: number;
  /** The ready line's match. */
  readonly ready: RegExpExecArray;
  /** stdout and stderr so far (the tail), for failure messages. */
  output(): string;
  /** Sends a signal without waiting (SIGSTOP, SIGCONT, SIGKILL...). */
  signal(signal: NodeJS.Signals): void;
  /** Sends `signal` and resolves with the exit code, or the signal's name if it killed the process. */
  stop(signal?: NodeJS.Signals): Promise<number | NodeJS.Signals>;
  readonly exited: Promise<number | NodeJS.Signals>;
}

/** Runs `flotilla ARGS...` (inside a network namespace if given) and resolves once a stdout line matches `ready`. */
export async function spawnFlotilla(
  args: readonly string[],
  ready: RegExp,
  what = args[0] ?? "flotilla",
  namespace?: string,
): Promise<FlotillaProcess> {
  // `ip netns exec` execs the program in place: signals sent to the child reach flotilla itself.
  const argv = [process.execPath, MAIN, ...args];
  const [program, ...rest] = namespace === undefined ? argv : ["ip", "netns", "exec", namespace, ...argv];
  const child: ChildProcess = spawn(program!, rest, { stdio: ["ignore", "pipe", "pipe"] });
  let text = "";
  const exited = new Promise<number | NodeJS.Signals>((resolve) => {
    child.once("exit", (code, signal) => resolve(code ?? signal ?? -1));
  });
  // FLOTILLA_TEST_LOG_DIR keeps each process's whole output, to read a failure's story afterwards.
  const logDir = process.env.FLOTILLA_TEST_LOG_DIR;
  const logFile =
    logDir === undefined || logDir === ""
      ? undefined
      : createWriteStream(join(logDir, `${what.replaceAll(/[^\w.-]+/g, "-")}.log`), { flags: "a" });
  for (const stream of [child.stdout, child.stderr]) {
    stream?.setEncoding("utf8").on("data", (chunk: string) => {
      text = (text + chunk).slice(-OUTPUT_CHARS_MAX);
      logFile?.write(chunk);
    });
  }
  void exited.then(() => logFile?.end());
  const match = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${what}: no ready line in ${START_MS_MAX} ms:\n${text}`)),
      START_MS_MAX,
    );
    child.stdout?.on("data", () => {
      const found = ready.exec(text);
      if (found === null) return;
      clearTimeout(timer);
      resolve(found);
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code}) before it was ready:\n${text}`));
    });
  }).catch((error: unknown) => {
    child.kill("SIGKILL");
    throw error;
  });
  const stop = async (signal: NodeJS.Signals = "SIGTERM"): Promise<number | NodeJS.Signals> => {
    child.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      exited,
      new Promise<"hung">((resolve) => {
        timer = setTimeout(() => resolve("hung"), EXIT_MS_MAX);
      }),
    ]);
    clearTimeout(timer);
    if (outcome !== "hung") return outcome;
    child.kill("SIGKILL");
    throw new Error(`${what} did not exit within ${EXIT_MS_MAX} ms of ${signal}:\n${text}`);
  };
  return {
    pid: child.pid ?? -1,
    ready: match,
    output: () => text,
    signal: (signal) => {
      child.kill(signal);
    },
    stop,
    exited,
    async [Symbol.asyncDispose]() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGCONT");
        await stop("SIGKILL");
      }
    },
  };
}
