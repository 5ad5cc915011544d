/**
 * The storage server over TCP: authentication, fencing (also across restarts), bad input beside a
 * well-behaved client, the copy-versus-mirror race provoked on purpose, and a real process killed
 * with SIGKILL.
 */
import assert from "node:assert/strict";
import { open, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { RpcClient, type RpcReply, resultsOf } from "../../src/rpc/index.ts";
import { ClusterSecret, newNonce } from "../../src/storage/auth.ts";
import { blockChecksums, DATA_OFFSET } from "../../src/storage/chunk-format.ts";
import {
  CODECS,
  decodeReplyBody,
  type ProcCodec,
  STORAGE_PROGRAM,
  STORAGE_VERSION,
  type StorageProcName,
  type StorageProcTypes,
} from "../../src/storage/protocol.ts";
import { authenticate, type RemoteStorageClient } from "../../src/storage/storage-client.ts";
import type { StorageServer } from "../../src/storage/storage-server.ts";
import type { ChunkRef } from "../../src/storage/types.ts";
import { SeededRandom } from "../../src/util/random.ts";
import { XdrWriter } from "../../src/xdr/index.ts";
import {
  blocks,
  clientOf,
  newSecret,
  rejectsWith,
  spawnStorageServer,
  startTestServer,
  type TestServerOptions,
  tempDir,
} from "../support/storage-process.ts";

const BLOCK = 4096;
const chunk: ChunkRef = { volumeId: "vol", chunkIndex: 0 };

/** One procedure through a bare RPC client: the reply decoded, or the StorageError it carries. */
async function rawCall<P extends StorageProcName>(
  rpc: RpcClient,
  name: P,
  args: StorageProcTypes[P]["args"],
): Promise<StorageProcTypes[P]["result"]> {
  const codec: ProcCodec<StorageProcTypes[P]["args"], StorageProcTypes[P]["result"]> = CODECS[name];
  const reply = await rpc.call(STORAGE_PROGRAM, STORAGE_VERSION, codec.procedure, codec.encodeArgs(args));
  return decodeReplyBody(codec, resultsOf(reply));
}

/** Hand-made arguments (anything at all) to procedure `procedure`. */
function rawBytes(rpc: RpcClient, procedure: number, args: Uint8Array): Promise<RpcReply> {
  return rpc.call(STORAGE_PROGRAM, STORAGE_VERSION, procedure, args);
}

async function connectRaw(server: StorageServer): Promise<RpcClient> {
  return RpcClient.connect(server.host, server.port, { timeoutMs: 10_000 });
}

test("storage server: an unauthenticated connection gets UNAUTHENTICATED for everything but NULL and the handshake", async () => {
  await using dir = await tempDir();
  const secret = newSecret();
  await using server = await startTestServer({ dataDir: dir.path, secret });
  await using rpc = await connectRaw(server);
  assert.equal((await rpc.call(STORAGE_PROGRAM, STORAGE_VERSION, 0, [])).kind, "success", "NULL answers");
  await assert.rejects(
    rawCall(rpc, "CREATE_CHUNK", { chunk, ownerEpoch: 1 }),
    rejectsWith("UNAUTHENTICATED"),
  );
  await assert.rejects(
    rawCall(rpc, "READ", { chunk, ownerEpoch: 0, blockOffset: 0, blockCount: 1 }),
    rejectsWith("UNAUTHENTICATED"),
  );
  await assert.rejects(rawCall(rpc, "STATS", undefined), rejectsWith("UNAUTHENTICATED"));
  await assert.rejects(
    rawCall(rpc, "FENCE", { volumeId: "vol", ownerEpoch: 9 }),
    rejectsWith("UNAUTHENTICATED"),
  );
  assert.equal(server.ownerEpoch("vol"), 0, "the refused FENCE had no effect");
  await authenticate(rpc, new ClusterSecret(secret), server.serverId);
  assert.equal((await rawCall(rpc, "STATS", undefined)).serverId, "s1");
});

test("storage server: a client with the wrong secret is refused at the handshake, both ways", async () => {
  await using dir = await tempDir();
  const secret = newSecret();
  await using server = await startTestServer({ dataDir: dir.path, secret });
  // Our client refuses the server (its proof is not made with our secret) before proving anything.
  await using wrong = clientOf(server, newSecret());
  await assert.rejects(wrong.stats(), rejectsWith("UNAUTHENTICATED"));
  // A client that ignores the server's proof and sends its own, made with the wrong secret.
  await using rpc = await connectRaw(server);
  const clientNonce = newNonce();
  const hello = await rawCall(rpc, "HELLO", { clientNonce });
  const clientProof = new ClusterSecret(newSecret()).clientProof("s1", clientNonce, hello.serverNonce);
  await assert.rejects(rawCall(rpc, "PROVE", { clientProof }), rejectsWith("UNAUTHENTICATED"));
  await assert.rejects(rawCall(rpc, "STATS", undefined), rejectsWith("UNAUTHENTICATED"));
  // Expecting another server at this address: UNAVAILABLE (the directory was stale), not success.
  await using misdirected = clientOf({ ...server, serverId: "s9" }, secret);
  await assert.rejects(misdirected.stats(), rejectsWith("UNAVAILABLE"));
});

test("storage server: a recorded handshake replayed on a new connection is refused", async () => {
  await using dir = await tempDir();
  const bytes = newSecret();
  const secret = new ClusterSecret(bytes);
  await using server = await startTestServer({ dataDir: dir.path, secret: bytes });
  // Record an honest handshake.
  await using first = await connectRaw(server);
  const clientNonce = newNonce();
  const hello = await rawCall(first, "HELLO", { clientNonce });
  const clientProof = secret.clientProof("s1", clientNonce, hello.serverNonce);
  await rawCall(first, "PROVE", { clientProof });
  await rawCall(first, "STATS", undefined);
  // Replay it on another connection: same nonce, same proof.
  await using second = await connectRaw(server);
  const replayedHello = await rawCall(second, "HELLO", { clientNonce });
  assert.notDeepEqual(replayedHello.serverNonce, hello.serverNonce, "the server's nonce is fresh");
  await assert.rejects(rawCall(second, "PROVE", { clientProof }), rejectsWith("UNAUTHENTICATED"));
  await assert.rejects(rawCall(second, "STATS", undefined), rejectsWith("UNAUTHENTICATED"));
  // And the proof alone, with no HELLO on its connection.
  await using third = await connectRaw(server);
  await assert.rejects(rawCall(third, "PROVE", { clientProof }), rejectsWith("UNAUTHENTICATED"));
});

test("storage server: handshake state is dropped as connections close", async () => {
  await using dir = await tempDir();
  const secret = newSecret();
  await using server = await startTestServer({ dataDir: dir.path, secret });
  const clients = Array.from({ length: 20 }, () => clientOf(server, secret));
  await Promise.all(clients.map((c) => c.stats()));
  assert.equal(server.authStateCount, 20);
  await Promise.all(clients.map((c) => c.close()));
  await untilTrue(() => server.authStateCount === 0 && server.connectionCount === 0, "connections to close");
});

/** Waits for `condition`, checking after each turn of the event loop (bounded). */
async function untilTrue(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 10_000 && !condition(); i++) await new Promise((resolve) => setImmediate(resolve));
  assert.ok(condition(), `timed out waiting for ${what}`);
}

test("storage server: a newer owner fences the older one, whose writes then never land, also after a restart", async () => {
  await using dir = await tempDir();
  const secret = newSecret();
  let server = await startTestServer({ dataDir: dir.path, secret });
  try {
    const old = clientOf(server, secret);
    await old.createChunk(chunk, 5);
    await old.write(chunk, 5, 0, blocks(5, 2));
    await old.flush("vol", 5);
    assert.deepEqual(await old.read(chunk, 5, 0, 1), blocks(5, 1));

    const next = clientOf(server, secret);
    await next.fence("vol", 6);
    await next.write(chunk, 6, 1, blocks(6, 1));
    assert.equal(await next.ownerEpoch("vol"), 6);

    await assert.rejects(old.write(chunk, 5, 0, blocks(0xee, 2)), rejectsWith("FENCED"));
    await assert.rejects(old.read(chunk, 5, 0, 2), rejectsWith("FENCED"));
    await assert.rejects(old.flush("vol", 5), rejectsWith("FENCED"));
    await assert.rejects(old.fence("vol", 5), rejectsWith("FENCED"));
    await assert.rejects(old.createChunk({ volumeId: "vol", chunkIndex: 1 }, 5), rejectsWith("FENCED"));
    assert.deepEqual(
      await next.read(chunk, 6, 0, 2),
      new Uint8Array([...blocks(5, 1), ...blocks(6, 1)]),
      "the fenced write did not land",
    );
    await next.flush("vol", 6);
    // Epoch 0 is nobody's: never a write.
    await assert.rejects(next.write(chunk, 0, 0, blocks(1, 1)), rejectsWith("INVALID"));
    await Promise.all([old.close(), next.close()]);

    await server.stop();
    server = await startTestServer({ dataDir: dir.path, secret });
    await using afterRestart = clientOf(server, secret);
    assert.equal(await afterRestart.ownerEpoch("vol"), 6, "the epoch was persisted");
    await assert.rejects(afterRestart.write(chunk, 5, 0, blocks(0xee, 2)), rejectsWith("FENCED"));
    await assert.rejects(afterRestart.read(chunk, 5, 0, 2), rejectsWith("FENCED"));
    await assert.rejects(afterRestart.flush("vol", 5), rejectsWith("FENCED"));
    assert.deepEqual(
      await afterRestart.read(chunk, 6, 0, 2),
      new Uint8Array([...blocks(5, 1), ...blocks(6, 1)]),
    );
    // What the coordination store tells a server directly.
    await server.raiseEpoch("vol", 8);
    await server.raiseEpoch("vol", 7);
    await assert.rejects(afterRestart.read(chunk, 6, 0, 1), rejectsWith("FENCED"));
    assert.equal(await afterRestart.ownerEpoch("vol"), 8);
  } finally {
    await server.stop();
  }
});

test("storage server: bad input gets clean errors while a well-behaved client keeps working", async () => {
  await using dir = await tempDir();
  const secret = newSecret();
  await using server = await startTestServer({ dataDir: dir.path, secret });
  await using good = clientOf(server, secret);
  await good.createChunk(chunk, 1);
  let running = true;
  let rounds = 0;
  const bystander = (async () => {
    for (let i = 0; running || i < 5; i++) {
      const data = new SeededRandom(i).bytes(8 * BLOCK);
      await good.write(chunk, 1, (i % 32) * 8, data);
      assert.deepEqual(await good.read(chunk, 1, (i % 32) * 8, 8), data);
      rounds++;
    }
  })();
  try {
    await using rpc = await connectRaw(server);
    await authenticate(rpc, new ClusterSecret(secret), "s1");
    // Malformed: cut short, trailing bytes, a volume id over its bound: GARBAGE_ARGS.
    const read = (id: string, offset: number, count: number) =>
      new XdrWriter().string(id).u32(0).u64(1).u32(offset).u32(count).bytes();
    assert.equal(
      (await rawBytes(rpc, CODECS.READ.procedure, read("vol", 0, 1).subarray(0, 10))).kind,
      "garbage-args",
    );
    assert.equal(
      (await rawBytes(rpc, CODECS.READ.procedure, new Uint8Array([...read("vol", 0, 1), 0, 0, 0, 0]))).kind,
      "garbage-args",
    );
    assert.equal(
      (await rawBytes(rpc, CODECS.READ.procedure, read("v".repeat(64), 0, 1))).kind,
      "garbage-args",
    );
    // Well-formed but out of range: INVALID.
    for (const args of [
      read("vol", 4000, 97),
      read("vol", 0, 0),
      read("vol", 0, 257),
      read("../etc", 0, 1),
    ]) {
      const reply = await rawBytes(rpc, CODECS.READ.procedure, args);
      assert.throws(() => decodeReplyBody(CODECS.READ, resultsOf(reply)), rejectsWith("INVALID"));
    }
    // A block whose checksum does not match what arrived: refused, nothing written.
    const data = blocks(9, 2);
    const checksums = blockChecksums(data);
    checksums[1] = (checksums[1] ?? 0) ^ 1;
    const other = { volumeId: "vol", chunkIndex: 1 };
    await rawCall(rpc, "CREATE_CHUNK", { chunk: other, ownerEpoch: 1 });
    await assert.rejects(
      rawCall(rpc, "WRITE", { chunk: other, ownerEpoch: 1, blockOffset: 0, data, checksums }),
      rejectsWith("UNAVAILABLE"),
    );
    assert.deepEqual(await good.read(other, 1, 0, 2), blocks(0, 2), "the damaged write did not land");
    // An unknown procedure.
    assert.equal((await rawBytes(rpc, 99, new Uint8Array(0))).kind, "proc-unavail");
    // Garbage bytes and an oversized record: the server closes those connections.
    for (const bytes of [new SeededRandom(3).bytes(4096), recordMark(64 * 1024 * 1024)]) {
      await untilClosedAfterSending(server, bytes);
    }
    assert.equal(
      (await rawCall(rpc, "STATS", undefined)).serverId,
      "s1",
      "the malformed calls' connection still serves",
    );
  } finally {
    running = false;
    await bystander;
  }
  assert.ok(rounds >= 5, `the bystander kept going (${rounds} rounds)`);
});

/** A record-marking header announcing `bytes` in one last fragment. */
function recordMark(bytes: number): Uint8Array {
  return new XdrWriter().u32((0x80000000 | bytes) >>> 0).bytes();
}

/** Opens a connection, sends `bytes`, and waits for the server to close it. */
function untilClosedAfterSending(server: StorageServer, bytes: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: server.host, port: server.port });
    const timer = setTimeout(() => reject(new Error("the server kept a garbage connection open")), 10_000);
    socket.on("error", () => {});
    socket.once("close", () => {
      clearTimeout(timer);
      resolve();
    });
    socket.write(bytes);
    socket.resume();
  });
}

interface Pair extends AsyncDisposable {
  readonly source: StorageServer;
  readonly target: StorageServer;
  readonly toSource: RemoteStorageClient;
  readonly toTarget: RemoteStorageClient;
  /** Stops the target and starts it again on the same directory and port (its clients reconnect). */
  restartTarget(): Promise<void>;
}

/** Two servers that know each other: s1 the source of a chunk, s2 the target of its move. */
async function serverPair(root: string, targetOptions: Partial<TestServerOptions> = {}): Promise<Pair> {
  const secret = newSecret();
  const addresses = new Map<string, { host: string; port: number }>();
  const directory = { addressOf: (id: string) => addresses.get(id) };
  const startTarget = (port = 0) =>
    startTestServer({ serverId: "s2", dataDir: join(root, "s2"), secret, directory, port, ...targetOptions });
  const source = await startTestServer({ serverId: "s1", dataDir: join(root, "s1"), secret, directory });
  let target = await startTarget();
  addresses.set("s1", { host: source.host, port: source.port });
  addresses.set("s2", { host: target.host, port: target.port });
  const toSource = clientOf(source, secret);
  const toTarget = clientOf(target, secret);
  return {
    source,
    get target() {
      return target;
    },
    toSource,
    toTarget,
    async restartTarget() {
      await target.stop();
      target = await startTarget(target.port);
    },
    async [Symbol.asyncDispose]() {
      await Promise.all([toSource.close(), toTarget.close()]);
      await Promise.all([source.stop(), target.stop()]);
    },
  };
}

function gate(): { readonly opened: Promise<void>; open(): void } {
  let open = () => {};
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

/**
 * Provokes the copy-versus-mirror race: the copy reads blocks 0-63 (all 0xaa) from the source and is
 * held at the hook; a client then writes a new block 10 (0xbb) to both replicas; then the copy's
 * write is let go. Returns what the target holds and how many blocks the copy wrote.
 */
async function provokeCopyRace(
  root: string,
  unsafeIgnoreFreshBlocks: boolean,
): Promise<{ data: Uint8Array; written: number }> {
  const reached = gate();
  const release = gate();
  await using pair = await serverPair(root, {
    unsafeIgnoreFreshBlocks,
    hooks: {
      afterCopySourceRead: async () => {
        reached.open();
        await release.opened;
      },
    },
  });
  await pair.toSource.createChunk(chunk, 1);
  await pair.toSource.write(chunk, 1, 0, blocks(0xaa, 64));
  await pair.toTarget.beginFill(chunk, 1);
  const copy = pair.toTarget.copyFrom(chunk, 1, "s1", 0, 64);
  await reached.opened;
  await Promise.all([
    pair.toSource.write(chunk, 1, 10, blocks(0xbb, 1)),
    pair.toTarget.write(chunk, 1, 10, blocks(0xbb, 1)),
  ]);
  release.open();
  const written = await copy;
  await pair.toTarget.endFill(chunk, 1);
  return { data: await pair.toTarget.read(chunk, 1, 0, 64), written };
}

test("storage server: copy versus mirror — a copy never lands over a newer client write (race provoked)", async () => {
  await using dir = await tempDir();
  const expected = new Uint8Array([...blocks(0xaa, 10), ...blocks(0xbb, 1), ...blocks(0xaa, 53)]);
  const safe = await provokeCopyRace(join(dir.path, "safe"), false);
  assert.equal(safe.written, 63, "the copy skipped exactly the block the client wrote");
  assert.ok(
    Buffer.from(safe.data).equals(expected),
    "the target holds the client's block 10 and the copy of the rest",
  );
  // The control: without the fresh-block bitmap the same sequence loses the client's write.
  const unsafe = await provokeCopyRace(join(dir.path, "unsafe"), true);
  assert.equal(unsafe.written, 64);
  assert.equal(
    unsafe.data[10 * BLOCK],
    0xaa,
    "without the bitmap the stale block lands: the race was provoked",
  );
});

test("storage server: copies refuse stale generations, name the source's bad block, and start over after a restart", async () => {
  await using dir = await tempDir();
  await using pair = await serverPair(dir.path);
  await pair.toSource.createChunk(chunk, 1);
  await pair.toSource.write(chunk, 1, 0, blocks(1, 16));
  await pair.toTarget.beginFill(chunk, 4);
  await assert.rejects(pair.toTarget.copyFrom(chunk, 3, "s1", 0, 16), rejectsWith("STALE_COPY"));
  await assert.rejects(pair.toTarget.copyFrom(chunk, 4, "s9", 0, 16), rejectsWith("UNAVAILABLE"));
  await assert.rejects(pair.toTarget.copyFrom(chunk, 4, "s2", 0, 16), rejectsWith("INVALID"));
  await assert.rejects(pair.toTarget.beginFill(chunk, 3), rejectsWith("STALE_COPY"));
  // Damage block 7 in the source's file.
  const file = await open(join(dir.path, "s1", "volumes", "vol", "0.chunk"), "r+");
  await file.write(new Uint8Array([0x55]), 0, 1, DATA_OFFSET + 7 * BLOCK + 100);
  await file.close();
  await assert.rejects(
    pair.toTarget.copyFrom(chunk, 4, "s1", 0, 16),
    rejectsWith("CHECKSUM", { blockIndex: 7 }),
  );
  assert.equal(await pair.toTarget.copyFrom(chunk, 4, "s1", 0, 7), 7);
  await pair.restartTarget();
  await assert.rejects(pair.toTarget.copyFrom(chunk, 4, "s1", 0, 7), rejectsWith("STALE_COPY"));
  await assert.rejects(pair.toTarget.endFill(chunk, 4), rejectsWith("STALE_COPY"));
  await pair.toTarget.beginFill(chunk, 5);
  assert.equal(await pair.toTarget.copyFrom(chunk, 5, "s1", 0, 7), 7);
  await pair.toTarget.endFill(chunk, 5);
  await pair.toTarget.endFill(chunk, 5);
  assert.deepEqual(await pair.toTarget.checksums(chunk, 7), await pair.toSource.checksums(chunk, 7));
});

test("storage server: a real process, killed with SIGKILL after a flush, restarts with the data intact", async () => {
  await using dir = await tempDir();
  const secretFile = join(dir.path, "secret");
  const secret = newSecret();
  await writeFile(secretFile, `${Buffer.from(secret).toString("hex")}\n`, { mode: 0o600 });
  const args = ["--data", join(dir.path, "data"), "--id", "s1", "--secret-file", secretFile];
  const data = new SeededRandom(11).bytes(256 * BLOCK);
  {
    await using server = await spawnStorageServer(args);
    await using client = clientOf(server, secret);
    await client.createChunk(chunk, 3);
    await Promise.all([0, 1, 2, 3].map((i) => client.write(chunk, 3, i * 256, data)));
    await client.flush("vol", 3);
    assert.equal(await server.stop("SIGKILL"), "SIGKILL");
  }
  await using server = await spawnStorageServer(args);
  await using client = clientOf(server, secret);
  for (let i = 0; i < 4; i++) {
    assert.ok(
      Buffer.from(await client.read(chunk, 3, i * 256, 256)).equals(data),
      `blocks ${i * 256} to ${i * 256 + 255}`,
    );
  }
  assert.equal(await client.ownerEpoch("vol"), 3);
  await assert.rejects(client.write(chunk, 2, 0, blocks(1, 1)), rejectsWith("FENCED"));
  assert.equal(await server.stop("SIGTERM"), 0, server.output());
});

test("storage server: a move's own steps (begin fill, end fill, drop) wait while a client's write is in flight", async () => {
  await using dir = await tempDir();
  const secret = newSecret();
  const reached = gate();
  const release = gate();
  const busy: ChunkRef = { volumeId: "vol", chunkIndex: 1 };
  const filled: ChunkRef = { volumeId: "vol", chunkIndex: 2 };
  const next: ChunkRef = { volumeId: "vol", chunkIndex: 3 };
  await using server = await startTestServer({
    dataDir: dir.path,
    secret,
    // Nothing goes for having waited long: only the client's write finishing lets the steps through.
    backgroundGate: { waitMaxMs: 60_000 },
    hooks: {
      duringClientWrite: async (written) => {
        if (written.chunkIndex !== busy.chunkIndex) return;
        reached.open();
        await release.opened;
      },
    },
  });
  await using client = clientOf(server, secret);
  await client.createChunk(chunk, 1);
  await client.createChunk(busy, 1);
  await client.beginFill(filled, 1);
  const write = client.write(busy, 1, 0, blocks(7, 1));
  await reached.opened;
  const settled: string[] = [];
  const steps = Promise.all(
    (
      [
        ["begin fill", client.beginFill(next, 1)],
        ["end fill", client.endFill(filled, 1)],
        ["drop", client.dropChunk(chunk)],
      ] as const
    ).map(([name, step]) => step.then(() => settled.push(name))),
  );
  try {
    await new Promise((resolve) => setTimeout(resolve, 150));
    assert.deepEqual(settled, [], "no step of a move runs beside the client's write");
  } finally {
    release.open();
  }
  await write;
  await steps;
  assert.deepEqual([...settled].sort(), ["begin fill", "drop", "end fill"]);
  await assert.rejects(client.read(chunk, 1, 0, 1), rejectsWith("NO_CHUNK"), "the drop happened");
  await assert.rejects(client.copyFrom(filled, 1, "s2", 0, 1), rejectsWith("STALE_COPY"), "filling ended");
  assert.deepEqual(await client.read(busy, 1, 0, 1), blocks(7, 1));
  await client.endFill(next, 1);
});
