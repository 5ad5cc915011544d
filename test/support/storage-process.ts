/**
 * Storage servers for tests: in this process (`startTestServer`), or as a child process running
 * `flotilla storage serve` (`spawnStorageServer`), which is what the crash tests kill.
 */

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RemoteStorageClient } from "../../src/storage/storage-client.ts";
import { StorageServer, type StorageServerOptions } from "../../src/storage/storage-server.ts";
import { StorageError, type StorageErrorCode } from "../../src/storage/types.ts";
import { spawnFlotilla } from "./flotilla-process.ts";

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
  const child = await spawnFlotilla(
    ["storage", "serve", "--port", "0", "--log-level", "warn", ...args],
    LISTENING,
    "flotilla storage serve",
  );
  return {
    serverId: child.ready[1] ?? "",
    host: child.ready[2] ?? "",
    port: Number(child.ready[3]),
    pid: child.pid,
    output: child.output,
    stop: child.stop,
    [Symbol.asyncDispose]: () => child[Symbol.asyncDispose](),
  };
}
