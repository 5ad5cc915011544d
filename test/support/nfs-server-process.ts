import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const MAIN = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));
/** Making the volume on first start and binding three ports takes a second or two; this only bounds a hang. */
const START_MS_MAX = 60_000;
/** SIGTERM asks the server to finish in-flight requests and commit; that is quick on an idle server. */
const STOP_MS_MAX = 30_000;
/** How much of each output stream is kept for failure messages (the tail). */
const OUTPUT_BYTES_MAX = 64 * 1024;
const URL_PATTERN = /nfs:\/\/[^\s"'<>]+/;

export interface NfsServerOptions {
  /** The volume's directory; a temporary one (removed on dispose) when not given. */
  readonly dataDir?: string;
  /** Export rules, each passed as `--export RULE`; none means the server's default. */
  readonly exports?: readonly string[];
  /** Address to listen on (default 127.0.0.1). */
  readonly listen?: string;
  /** Volume size on first start, as `--size` takes it (default 1G; the volume file is sparse). */
  readonly size?: string;
  /** A portmapper port, or "off" (the default: port 111 is a privileged, shared port). */
  readonly portmapPort?: number | "off";
  readonly startMsMax?: number;
}

export interface LibnfsUrlOptions {
  readonly uid?: number;
  readonly gid?: number;
}

export interface NfsServerProcess {
  /** The URL line exactly as the server printed it. */
  readonly url: string;
  readonly host: string;
  readonly nfsPort: number;
  readonly mountPort: number;
  readonly dataDir: string;
  readonly pid: number;
  /** A libnfs URL of the directory `path` (default the export's root), for nfs-ls and the C programs. */
  dirUrl(path?: string, options?: LibnfsUrlOptions): string;
  /** A libnfs URL of the file `name` in the export's root, for nfs-cp and nfs-cat. */
  fileUrl(name: string, options?: LibnfsUrlOptions): string;
  /** What the server printed so far (the tail of each stream), for failure messages. */
  output(): string;
  /** SIGTERM (or `signal`), then waits for the exit; resolves to the exit code (128 + signal number if killed by one). */
  stop(signal?: "SIGTERM" | "SIGINT"): Promise<number>;
  kill(signal: NodeJS.Signals): void;
  /** Whether the process has exited. */
  readonly exited: boolean;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Keeps the last `OUTPUT_BYTES_MAX` characters of a stream. */
class Tail {
  private text = "";
  append(chunk: string): void {
    this.text += chunk;
    if (this.text.length > 2 * OUTPUT_BYTES_MAX) this.text = this.text.slice(-OUTPUT_BYTES_MAX);
  }
  toString(): string {
    return this.text.length > OUTPUT_BYTES_MAX ? `...${this.text.slice(-OUTPUT_BYTES_MAX)}` : this.text;
  }
}

interface ParsedUrl {
  readonly host: string;
  readonly nfsPort: number;
  readonly mountPort: number;
}

/** Host and ports out of `nfs://HOST/?version=3&nfsport=N&mountport=M`; an error naming what is missing. */
export function parseServerUrl(text: string): ParsedUrl {
  const url = new URL(text);
  const nfsPort = Number(url.searchParams.get("nfsport"));
  const mountPort = Number(url.searchParams.get("mountport"));
  if (url.hostname === "") throw new Error(`URL ${text} has no host`);
  if (!Number.isInteger(nfsPort) || nfsPort <= 0) throw new Error(`URL ${text} has no nfsport`);
  if (!Number.isInteger(mountPort) || mountPort <= 0) throw new Error(`URL ${text} has no mountport`);
  if (url.searchParams.get("version") !== "3") throw new Error(`URL ${text} does not say version=3`);
  return { host: url.hostname, nfsPort, mountPort };
}

function libnfsUrl(server: ParsedUrl, path: string, options: LibnfsUrlOptions): string {
  const query = [`version=3`, `nfsport=${server.nfsPort}`, `mountport=${server.mountPort}`];
  if (options.uid !== undefined) query.push(`uid=${options.uid}`);
  if (options.gid !== undefined) query.push(`gid=${options.gid}`);
  return `nfs://${server.host}${path}?${query.join("&")}`;
}

function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  const signals: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 2, SIGKILL: 9, SIGTERM: 15, SIGABRT: 6 };
  return 128 + (signal === null ? 0 : (signals[signal] ?? 0));
}

function argsFor(options: NfsServerOptions, dataDir: string): string[] {
  const args = [MAIN, "serve", "--data", dataDir, "--listen", options.listen ?? "127.0.0.1"];
  // Port 0: the server binds free ports itself (no race with other processes) and prints them in its URL.
  args.push("--nfs-port", "0", "--mount-port", "0");
  args.push("--portmap-port", String(options.portmapPort ?? "off"), "--size", options.size ?? "1G");
  for (const rule of options.exports ?? []) args.push("--export", rule);
  return args;
}

/**
 * Starts `flotilla serve` in a child process on the Node running the tests (the pinned one under npm)
 * and resolves once it has printed its URL line, which names the ports it bound.
 */
export async function startNfsServer(options: NfsServerOptions = {}): Promise<NfsServerProcess> {
  const ownsDataDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), "flotilla-nfs-")));
  try {
    const child = spawn(process.execPath, argsFor(options, dataDir), { stdio: ["ignore", "pipe", "pipe"] });
    return await attach(child, dataDir, ownsDataDir, options.startMsMax ?? START_MS_MAX);
  } catch (error) {
    if (ownsDataDir) await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
}

function attach(
  child: ChildProcess,
  dataDir: string,
  ownsDataDir: boolean,
  startMsMax: number,
): Promise<NfsServerProcess> {
  const stdout = new Tail();
  const stderr = new Tail();
  const output = () => `--- server stdout ---\n${stdout}\n--- server stderr ---\n${stderr}`;
  let exitCode: number | undefined;
  const exited = new Promise<number>((resolve) => {
    child.on("exit", (code, signal) => {
      exitCode = exitCodeOf(code, signal);
      resolve(exitCode);
    });
  });

  return new Promise((resolve, reject) => {
    let lineBuffer = "";
    let found = false;
    const fail = (reason: string) => {
      if (found) return;
      found = true;
      clearTimeout(timer);
      child.kill("SIGKILL");
      // A child that never started (spawn error) has no exit event to wait for.
      const gone = child.pid === undefined ? Promise.resolve(-1) : exited;
      void gone.then(async () => {
        if (ownsDataDir) await rm(dataDir, { recursive: true, force: true });
        reject(new Error(`flotilla serve ${reason}\n${output()}`));
      });
    };
    const timer = setTimeout(() => fail(`printed no URL line within ${startMsMax} ms`), startMsMax);
    child.on("error", (error) => fail(`could not start: ${error.message}`));
    void exited.then((code) => fail(`exited with ${code} before printing its URL`));
    child.stderr?.setEncoding("utf8").on("data", (chunk: string) => stderr.append(chunk));
    child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
      stdout.append(chunk);
      if (found) return;
      lineBuffer += chunk;
      const lines = lineBuffer.split("\n");
      lineBuffer = lines.pop() ?? "";
      for (const line of lines) {
        const match = URL_PATTERN.exec(line);
        if (match === null) continue;
        let parsed: ParsedUrl;
        try {
          parsed = parseServerUrl(match[0]);
        } catch (error) {
          fail(`printed a URL libnfs cannot use: ${(error as Error).message}`);
          return;
        }
        found = true;
        clearTimeout(timer);
        resolve(handle(child, match[0], parsed, dataDir, ownsDataDir, exited, () => exitCode, output));
        return;
      }
    });
  });
}

function handle(
  child: ChildProcess,
  url: string,
  parsed: ParsedUrl,
  dataDir: string,
  ownsDataDir: boolean,
  exited: Promise<number>,
  exitCode: () => number | undefined,
  output: () => string,
): NfsServerProcess {
  const stop = async (signal: "SIGTERM" | "SIGINT" = "SIGTERM"): Promise<number> => {
    if (exitCode() === undefined) child.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), STOP_MS_MAX);
    });
    const outcome = await Promise.race([exited, timeout]);
    clearTimeout(timer);
    if (outcome !== "timeout") return outcome;
    child.kill("SIGKILL");
    await exited;
    throw new Error(`flotilla serve did not exit within ${STOP_MS_MAX} ms of ${signal}; killed\n${output()}`);
  };
  return {
    url,
    ...parsed,
    dataDir,
    pid: child.pid ?? -1,
    dirUrl: (path = "/", options = {}) => libnfsUrl(parsed, path, options),
    // libnfs splits a file URL at its last "/": the part before is the export to mount ("/" here).
    fileUrl: (name, options = {}) => libnfsUrl(parsed, `//${name}`, options),
    output,
    stop,
    kill: (signal) => {
      if (exitCode() === undefined) child.kill(signal);
    },
    get exited() {
      return exitCode() !== undefined;
    },
    async [Symbol.asyncDispose]() {
      if (exitCode() === undefined) {
        child.kill("SIGKILL");
        await exited;
      }
      if (ownsDataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}
