import assert from "node:assert/strict";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import type { ChunkRef } from "../../../src/storage/types.ts";
import { clientOf, newSecret, rejectsWith, startTestServer, tempDir } from "../../support/storage-process.ts";

const chunk: ChunkRef = { volumeId: "vol", chunkIndex: 0 };
const secret = newSecret();

/** A TCP server that accepts and never answers. */
async function silentServer(): Promise<Server & AsyncDisposable> {
  const server = createServer((socket) => socket.resume());
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return Object.assign(server, {
    [Symbol.asyncDispose]: () => new Promise<void>((resolve) => server.close(() => resolve())),
  });
}

function portOf(server: Server): number {
  const address = server.address();
  assert.ok(address !== null && typeof address === "object");
  return address.port;
}

test("client: nobody listening is UNAVAILABLE; bad arguments are INVALID without connecting", async () => {
  const closed = await silentServer();
  const port = portOf(closed);
  await closed[Symbol.asyncDispose]();
  await using c = clientOf({ host: "127.0.0.1", port }, secret);
  await assert.rejects(c.stats(), rejectsWith("UNAVAILABLE", { message: /cannot connect/ }));
  await assert.rejects(c.read(chunk, 1, 4000, 200), rejectsWith("INVALID"));
  await assert.rejects(c.write(chunk, 1, 0, new Uint8Array(100)), rejectsWith("INVALID"));
  await assert.rejects(c.read({ volumeId: "No!", chunkIndex: 0 }, 1, 0, 1), rejectsWith("INVALID"));
});

test("client: a server that never answers the handshake is UNAVAILABLE after the connect timeout", async () => {
  await using silent = await silentServer();
  await using c = clientOf({ host: "127.0.0.1", port: portOf(silent) }, secret, { connectTimeoutMs: 100 });
  const started = performance.now();
  await assert.rejects(c.stats(), rejectsWith("UNAVAILABLE", { message: /100 ms/ }));
  const elapsedMs = performance.now() - started;
  assert.ok(elapsedMs >= 90 && elapsedMs < 5000, `gave up after ${elapsedMs} ms`);
});

test("client: a call without a reply times out as UNAVAILABLE; the bound on outstanding calls refuses at once", async () => {
  await using dir = await tempDir();
  let release = () => {};
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  const addresses = new Map<string, { host: string; port: number }>();
  const directory = { addressOf: (id: string) => addresses.get(id) };
  await using source = await startTestServer({
    serverId: "s2",
    dataDir: join(dir.path, "s2"),
    secret,
    directory,
  });
  addresses.set("s2", { host: source.host, port: source.port });
  await using server = await startTestServer({
    dataDir: join(dir.path, "s1"),
    secret,
    directory,
    hooks: { afterCopySourceRead: () => held },
  });
  await using toSource = clientOf(source, secret);
  await toSource.createChunk(chunk, 1);
  await using c = clientOf(server, secret, { callTimeoutMs: 150, outstandingMax: 2 });
  await c.beginFill(chunk, 1);
  const stalled = [c.copyFrom(chunk, 1, "s2", 0, 1), c.copyFrom(chunk, 1, "s2", 1, 1)];
  await assert.rejects(c.stats(), rejectsWith("UNAVAILABLE", { message: /2 calls .* outstanding/ }));
  for (const call of stalled) await assert.rejects(call, rejectsWith("UNAVAILABLE", { message: /TIMEOUT/ }));
  release();
  assert.equal((await c.stats()).serverId, "s1", "the connection still serves after the timeouts");
});

test("client: many calls in flight share one connection", async () => {
  await using dir = await tempDir();
  await using server = await startTestServer({ dataDir: dir.path, secret });
  await using c = clientOf(server, secret);
  await c.createChunk(chunk, 1);
  const data = (i: number) => new Uint8Array(4096).fill(i);
  await Promise.all(Array.from({ length: 200 }, (_, i) => c.write(chunk, 1, i, data(i))));
  const reads = await Promise.all(Array.from({ length: 200 }, (_, i) => c.read(chunk, 1, i, 1)));
  for (const [i, block] of reads.entries()) assert.equal(block[0], i, `block ${i}`);
  assert.equal(server.connectionCount, 1);
});

test("client: after the server goes away and comes back, the next call reconnects", async () => {
  await using dir = await tempDir();
  let server = await startTestServer({ dataDir: dir.path, secret });
  const port = server.port;
  await using c = clientOf({ host: "127.0.0.1", port }, secret);
  try {
    await c.createChunk(chunk, 1);
    await server.stop();
    await assert.rejects(c.stats(), rejectsWith("UNAVAILABLE"));
    server = await startTestServer({ dataDir: dir.path, secret, port });
    assert.equal((await c.stats()).chunkCount, 1);
  } finally {
    await server.stop();
  }
  await c.close();
  await assert.rejects(c.stats(), rejectsWith("UNAVAILABLE", { message: /closed/ }));
});
