import { spawn } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";

/** Where the C test programs live. */
export const LIBNFS_SOURCES = fileURLToPath(new URL("./libnfs/", import.meta.url));
/** Building a test program takes well under a second; this only bounds a hang. */
const BUILD_MS_MAX = 60_000;

export interface RunResult {
  readonly command: string;
  readonly status: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** The run was killed for taking longer than its bound. */
  readonly timedOut: boolean;
}

export interface RunOptions {
  readonly timeoutMs: number;
  readonly cwd?: string;
}

/** Runs a program to completion (killed after `timeoutMs`), collecting its output. Never rejects on a non-zero exit. */
export function run(program: string, args: readonly string[], options: RunOptions): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { stdio: ["ignore", "pipe", "pipe"], cwd: options.cwd });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, options.timeoutMs);
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on("close", (status, signal) => {
      clearTimeout(timer);
      resolve({ command: [program, ...args].join(" "), status, signal, stdout, stderr, timedOut });
    });
  });
}

/** The run in words, for an assertion message: command, how it ended, and its output (the tail of each stream). */
export function describeRun(result: RunResult, outputCharsMax = 4000): string {
  const ended = result.timedOut
    ? "was killed after its time bound"
    : result.signal !== null
      ? `was killed by ${result.signal}`
      : `exited ${result.status}`;
  const tail = (text: string) => (text.length > outputCharsMax ? `...${text.slice(-outputCharsMax)}` : text);
  return `${result.command}\n  ${ended}\n--- stdout ---\n${tail(result.stdout)}\n--- stderr ---\n${tail(result.stderr)}`;
}

/** Whether `name` is an executable file in a directory on PATH. */
export function onPath(name: string): boolean {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir === "") continue;
    try {
      accessSync(join(dir, name), constants.X_OK);
      return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}

/** The client-side tools the libnfs tests run, and the Debian package that brings each. */
export const INTEGRATION_TOOLS: Readonly<Record<string, string>> = {
  "nfs-ls": "libnfs-utils",
  "nfs-cp": "libnfs-utils",
  "nfs-cat": "libnfs-utils",
  gcc: "gcc (with libnfs-dev)",
  tshark: "tshark",
};

/** What is missing of `tools`, in words, or undefined when every one is on PATH. */
export function missingTools(tools: readonly string[] = Object.keys(INTEGRATION_TOOLS)): string | undefined {
  const missing = tools.filter((tool) => !onPath(tool));
  if (missing.length === 0) return undefined;
  const packages = [...new Set(missing.map((tool) => INTEGRATION_TOOLS[tool] ?? tool))];
  return `${missing.join(", ")} not on PATH (install ${packages.join(", ")}; CI does so in .ci/run)`;
}

/**
 * Why the integration tests cannot run here, or undefined when they can. On a developer's machine
 * without the tools they are skipped with this reason, also printed so the skip is never silent. In CI
 * (CI set) they are never skipped: .ci/run installs the tools, and a missing one must fail the run,
 * which `assertToolsPresent` in the tests' setup does.
 */
export function integrationSkipReason(
  tools: readonly string[] = Object.keys(INTEGRATION_TOOLS),
): string | undefined {
  const reason = missingTools(tools);
  if (reason === undefined || process.env.CI) return undefined;
  process.stderr.write(`skipping integration tests: ${reason}\n`);
  return reason;
}

/** Fails (in CI, where nothing is skipped) when a tool is missing. */
export function assertToolsPresent(tools: readonly string[] = Object.keys(INTEGRATION_TOOLS)): void {
  const reason = missingTools(tools);
  if (reason !== undefined) throw new Error(`integration tests cannot run: ${reason}`);
}

export interface LibnfsPrograms {
  /** Drives every operation and checks each result: `nfs-ops URL UID GID [BASE]`. */
  readonly ops: string;
  /** Single scripted steps: `nfs-tool URL UID GID mkfiles|mkdir|write|verify|stat ...`. */
  readonly tool: string;
}

/** Compiles one C test program (`libnfs/NAME.c`) against libnfs into `dir`; an error with gcc's output if that fails. */
export async function buildLibnfsProgram(dir: string, name: string): Promise<string> {
  const output = join(dir, name);
  const source = join(LIBNFS_SOURCES, `${name}.c`);
  const result = await run("gcc", ["-O1", "-Wall", "-Werror", "-o", output, source, "-lnfs"], {
    timeoutMs: BUILD_MS_MAX,
  });
  if (result.status !== 0) throw new Error(`building ${name} failed:\n${describeRun(result)}`);
  return output;
}

/** Compiles the C test programs against libnfs into `dir`. */
export async function buildLibnfsPrograms(dir: string): Promise<LibnfsPrograms> {
  const [ops, tool] = await Promise.all([
    buildLibnfsProgram(dir, "nfs-ops"),
    buildLibnfsProgram(dir, "nfs-tool"),
  ]);
  return { ops, tool };
}
