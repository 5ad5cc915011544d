/**
 * Storage servers for tests: in this process (`startTestServer`), or as a child process running
 * `flotilla storage serve` (`spawnStorageServer`), which is what the crash tests kill.
 */

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { RemoteStorageClient } from "../../src/storage/storage-client.ts";
import { StorageServer, type StorageServerOptions } from "../../src/storage/storage-server.ts";
import { StorageError, type StorageErrorCode } from "../../src/storage/types.ts";

const MAIN = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));
/** A start takes well under a second; this bounds a hang. */
const START_MS_MAX = 30_000;
const EXIT_MS_MAX = 30_000;
const LISTENING = /^storage server (\S+) listening on (\S+):(\d+) /m;

/** A temporary directory, removed on dispose. */
export async function tempDir(
  prefix = "flotilla-storage-",
): Promise<{ readonly path: string } & AsyncDisposable> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, [Symbol.asyncDispose]: () => rm(path, { recursive: true, force: true }) };
}

export function newSecret(): Uint8Array {
  return new Uint8Array(randomBytes(32));
}

/** `count` blocks of 4 KiB, every byte `fill`. */
export function blocks(fill: number, count: number): Uint8Array {
  return new Uint8Array(count * 4096).fill(fill);
}

/** For assert.rejects and assert.throws: a StorageError with `code` (and the block, and a message like). */
export function rejectsWith(
  code: StorageErrorCode,
  expected: { readonly blockIndex?: number; readonly message?: RegExp } = {},
): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof StorageError, `expected a StorageError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    if (expected.blockIndex !== undefined) assert.equal(error.blockIndex, expected.blockIndex);
    if (expected.message !== undefined) assert.match(error.message, expected.message);
    return true;
  };
}

/** A client of the server at `at` (a StorageServer, a StorageProcess, or an address) under `serverId`. */
export function clientOf(
  at: { readonly host: string; readonly port: number; readonly serverId?: string },
  secret: Uint8Array,
  options: Partial<ConstructorParameters<typeof RemoteStorageClient>[0]> = {},
): RemoteStorageClient {
  return new RemoteStorageClient({
    serverId: at.serverId ?? "s1",
    host: at.host,
    port: at.port,
    secret,
    ...options,
  });
}

export type TestServerOptions = Partial<StorageServerOptions> &
  Pick<StorageServerOptions, "dataDir" | "secret">;

/** A storage server in this process, on a free loopback port, with a directory of no peers by default. */
export function startTestServer(options: TestServerOptions): Promise<StorageServer> {
  return StorageServer.start({
    serverId: "s1",
    capacityBytes: 1024 ** 3,
    directory: { addressOf: () => undefined },
    ...options,
  });
}

export interface StorageProcess extends AsyncDisposable {
  readonly serverId: string;
  readonly host: string;
  readonly port: number;
  readonly pid: number;
  /** stdout and stderr so far, for failure messages. */
  output(): string;
  /** Sends `signal` and resolves with the exit code, or the signal's name if it killed the process. */
  stop(signal?: NodeJS.Signals): Promise<number | NodeJS.Signals>;
}

/** Runs `flotilla storage serve ARGS...` and resolves once it prints its listening line. */
export async function spawnStorageServer(args: readonly string[]): Promise<StorageProcess> {
  const child = spawn(
    process.execPath,
    [MAIN, "storage", "serve", "--port", "0", "--log-level", "warn", ...args],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let text = "";
  const exited = new Promise<number | NodeJS.Signals>((resolve) => {
    child.once("exit", (code, signal) => resolve(code ?? signal ?? -1));
  });
  for (const stream of [child.stdout, child.stderr]) {
    stream.setEncoding("utf8").on("data", (chunk: string) => {
      // The tail is what explains a failure; a server that logs a lot must not grow this without end.
      text = (text + chunk).slice(-64 * 1024);
    });
  }
  const listening = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no listening line in ${START_MS_MAX} ms:\n${text}`)),
      START_MS_MAX,
    );
    child.stdout.on("data", () => {
      const match = LISTENING.exec(text);
      if (match === null) return;
      clearTimeout(timer);
      resolve(match);
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`flotilla storage serve exited (${code}) before listening:\n${text}`));
    });
  }).catch(async (error: unknown) => {
    child.kill("SIGKILL");
    throw error;
  });
  return processHandle(child, listening, exited, () => text);
}

function processHandle(
  child: ChildProcess,
  listening: RegExpExecArray,
  exited: Promise<number | NodeJS.Signals>,
  output: () => string,
): StorageProcess {
  const stop = async (signal: NodeJS.Signals = "SIGTERM") => {
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
    throw new Error(
      `flotilla storage serve did not exit within ${EXIT_MS_MAX} ms of ${signal}:\n${output()}`,
    );
  };
  return {
    serverId: listening[1] ?? "",
    host: listening[2] ?? "",
    port: Number(listening[3]),
    pid: child.pid ?? -1,
    output,
    stop,
    async [Symbol.asyncDispose]() {
      if (child.exitCode === null && child.signalCode === null) await stop("SIGKILL");
    },
  };
}
