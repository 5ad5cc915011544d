import assert from "node:assert/strict";
import { test } from "node:test";
import { pino } from "pino";
import {
  AuthFlavor,
  AuthStat,
  encodeAuthSys,
  encodeCall,
  encodeFragments,
  encodeRecord,
  RPC_FRAGMENTS_PER_RECORD_MAX,
  RPC_RECORD_BYTES_MAX,
  RpcClient,
  RpcClientError,
  type RpcReply,
  RpcServer,
  type RpcServerOptions,
  resultsOf,
} from "../../../src/rpc/index.ts";
import { SeededRandom } from "../../../src/util/random.ts";
import { XdrWriter } from "../../../src/xdr/index.ts";
import { RawPeer, turnsUntil } from "../../support/raw-peer.ts";
import { echo, echoArgs, TOY_PROGRAM, ToyProcedure, ToyState, toyPrograms, u32Args } from "./toy-program.ts";

interface Started {
  readonly server: RpcServer;
  readonly port: number;
  readonly state: ToyState;
  [Symbol.asyncDispose](): Promise<void>;
}

async function startServer(options: Partial<RpcServerOptions> = {}): Promise<Started> {
  const state = new ToyState();
  const server = new RpcServer({ programs: toyPrograms(state), name: "toy", ...options });
  const { port } = await server.listen("127.0.0.1", 0);
  return {
    server,
    port,
    state,
    [Symbol.asyncDispose]: async () => {
      // Nothing a test left blocked may hold the server open.
      state.openGate();
      await server.close();
    },
  };
}

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(chunks));
}

function rejectsWithCode(code: string): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof RpcClientError, `expected an RpcClientError, got ${String(error)}`);
    assert.equal(error.code, code);
    return true;
  };
}

function gatedValue(reply: RpcReply): number {
  return resultsOf(reply).u32();
}

/** GATED calls carrying 0, 1, 2, ... (and `padding` after the value, which the handler ignores). */
function gatedCalls(client: RpcClient, count: number, padding = new Uint8Array(0)): Promise<RpcReply>[] {
  return Array.from({ length: count }, (_, i) =>
    client.call(TOY_PROGRAM, 1, ToyProcedure.GATED, [u32Args(i), padding]),
  );
}

async function assertGatedValues(pending: readonly Promise<RpcReply>[]): Promise<void> {
  const values = (await Promise.all(pending)).map(gatedValue);
  assert.deepEqual(
    values,
    pending.map((_, i) => i),
  );
}

test("server: echoes over TCP, passes the AUTH_SYS credential and the normalized client address", async () => {
  await using started = await startServer();
  await using client = await RpcClient.connect("127.0.0.1", started.port);
  const payload = new SeededRandom(1).bytes(1001);
  assert.deepEqual(await echo(client, payload), payload);
  const sys = { stamp: 9, machineName: "tester", uid: 1000, gid: 50, gids: [50, 60] };
  const reply = await client.call(TOY_PROGRAM, 1, ToyProcedure.WHOAMI, [], {
    credential: { flavor: "sys", sys },
  });
  const results = resultsOf(reply);
  assert.equal(results.string(10), "sys");
  assert.equal(results.string(255), "tester");
  assert.deepEqual(
    [results.u32(), results.u32(), results.u32(), results.u32(), results.u32()],
    [1000, 50, 2, 50, 60],
  );
  assert.equal(results.string(100), "127.0.0.1");
  const firstConnectionId = results.u32();
  await using other = await RpcClient.connect("127.0.0.1", started.port);
  const otherResults = resultsOf(await other.call(TOY_PROGRAM, 1, ToyProcedure.WHOAMI, []));
  assert.equal(otherResults.string(10), "none");
  otherResults.string(100);
  assert.notEqual(otherResults.u32(), firstConnectionId, "each connection has its own id");
  assert.equal(started.server.connectionCount, 2);
});

test("server: an IPv4 client of a dual-stack listener is seen without the ::ffff: prefix", async (t) => {
  const state = new ToyState();
  await using server = new RpcServer({ programs: toyPrograms(state) });
  let port: number;
  try {
    ({ port } = await server.listen("::", 0));
  } catch {
    t.skip("no IPv6 on this machine");
    return;
  }
  await using client = await RpcClient.connect("127.0.0.1", port);
  const results = resultsOf(await client.call(TOY_PROGRAM, 1, ToyProcedure.WHOAMI, []));
  results.string(10);
  assert.equal(results.string(100), "127.0.0.1");
});

test("server: replies as calls complete, a fast call overtaking a slow one", async () => {
  await using started = await startServer();
  await using client = await RpcClient.connect("127.0.0.1", started.port);
  let slowDone = false;
  const slow = client.call(TOY_PROGRAM, 3, ToyProcedure.GATED, u32Args(41)).then((reply) => {
    slowDone = true;
    return reply;
  });
  await started.state.until((state) => state.active === 1);
  assert.deepEqual(await echo(client, Uint8Array.of(7)), Uint8Array.of(7));
  assert.equal(slowDone, false, "the fast reply came while the slow call was still running");
  started.state.release();
  assert.equal(gatedValue(await slow), 41);
});

test("server: the RPC layer's own answers, each leaving the connection usable", async () => {
  await using started = await startServer();
  await using client = await RpcClient.connect("127.0.0.1", started.port);
  const call = (version: number, procedure: number, options = {}, program = TOY_PROGRAM) =>
    client.call(program, version, procedure, [], options);
  const unknownFlavor = { credential: { flavor: 6, body: new Uint8Array(12) } };
  const sysWithTrailingBytes = {
    credential: {
      flavor: AuthFlavor.SYS,
      body: concat([
        encodeAuthSys({ stamp: 1, machineName: "m", uid: 0, gid: 0, gids: [] }),
        new Uint8Array(4),
      ]),
    },
  };
  const sysVerifier = { verifier: { flavor: AuthFlavor.SYS, body: new Uint8Array(0) } };
  const cases: [string, Promise<RpcReply>, object][] = [
    ["unknown program", call(1, 0, {}, 0x2000_0999), { kind: "prog-unavail" }],
    ["unknown version", call(2, 0), { kind: "prog-mismatch", low: 1, high: 3 }],
    ["unknown procedure", call(3, 99), { kind: "proc-unavail" }],
    ["arguments cut short", call(3, ToyProcedure.ECHO), { kind: "garbage-args" }],
    ["handler throws", call(3, ToyProcedure.THROW), { kind: "system-error" }],
    ["rpcvers 3", call(3, 0, { rpcVersion: 3 }), { kind: "rpc-mismatch", low: 2, high: 2 }],
    ["credential flavor 6", call(3, 0, unknownFlavor), { kind: "auth-error", stat: AuthStat.BADCRED }],
    [
      "AUTH_SYS with trailing bytes",
      call(3, 0, sysWithTrailingBytes),
      { kind: "auth-error", stat: AuthStat.BADCRED },
    ],
    ["AUTH_SYS verifier", call(3, 0, sysVerifier), { kind: "auth-error", stat: AuthStat.BADVERF }],
    ["handler refuses", call(3, ToyProcedure.REFUSE), { kind: "auth-error", stat: AuthStat.TOOWEAK }],
    ["bad credential to an unknown program", call(1, 0, unknownFlavor, 7), { kind: "auth-error", stat: 1 }],
  ];
  for (const [what, pending, expected] of cases) {
    const { xid, verifier, ...rest } = { verifier: undefined, ...(await pending) };
    assert.deepEqual(rest, expected, what);
  }
  assert.deepEqual(await echo(client, Uint8Array.of(1, 2)), Uint8Array.of(1, 2));
});

test("server: a dropped call gets no reply, the client times out, and the connection goes on", async () => {
  await using started = await startServer();
  await using client = await RpcClient.connect("127.0.0.1", started.port);
  await assert.rejects(
    client.call(TOY_PROGRAM, 1, ToyProcedure.DROP, [], { timeoutMs: 50 }),
    rejectsWithCode("TIMEOUT"),
  );
  assert.equal(client.outstandingCount, 0);
  assert.deepEqual(await echo(client, Uint8Array.of(3)), Uint8Array.of(3));
});

test("client: an aborted call rejects with the signal's reason", async () => {
  await using started = await startServer();
  await using client = await RpcClient.connect("127.0.0.1", started.port);
  const controller = new AbortController();
  const pending = client.call(TOY_PROGRAM, 1, ToyProcedure.GATED, u32Args(1), { signal: controller.signal });
  await started.state.until((state) => state.active === 1);
  controller.abort(new Error("stop"));
  await assert.rejects(pending, /stop/);
  assert.equal(client.outstandingCount, 0);
});

test("server: multi-fragment call records, cut anywhere, even inside the header, with empty fragments", async () => {
  await using started = await startServer();
  await using client = await RpcClient.connect("127.0.0.1", started.port);
  const payload = new SeededRandom(2).bytes(5000);
  const xid = 0x1234_5678;
  const message = concat(
    encodeCall({ xid, program: TOY_PROGRAM, version: 3, procedure: 1 }, [echoArgs(payload)]),
  );
  const cuts = [0, 1, 5, 5, 17, 40, 41, 4000, message.length];
  const fragments = cuts.slice(1).map((end, i) => message.subarray(cuts[i], end));
  assert.ok(fragments.some((fragment) => fragment.length === 0));
  const reply = await client.callRaw(xid, encodeFragments(fragments));
  assert.deepEqual(resultsOf(reply).opaque(10_000), payload);
});

test("server: a 1 MiB call in 64 KiB fragments and its 1 MiB reply", async () => {
  await using started = await startServer();
  await using client = await RpcClient.connect("127.0.0.1", started.port);
  const payload = new SeededRandom(3).bytes(1024 * 1024);
  const xid = 99;
  const message = concat(
    encodeCall({ xid, program: TOY_PROGRAM, version: 1, procedure: 1 }, [echoArgs(payload)]),
  );
  const fragments: Uint8Array[] = [];
  for (let at = 0; at < message.length; at += 65_536) fragments.push(message.subarray(at, at + 65_536));
  const reply = await client.callRaw(xid, encodeFragments(fragments));
  assert.ok(Buffer.from(resultsOf(reply).opaque(2 * 1024 * 1024)).equals(payload));
});

test("server: a record over the bound closes that connection only", async () => {
  await using started = await startServer();
  await using good = await RpcClient.connect("127.0.0.1", started.port);
  await using bad = await RpcClient.connect("127.0.0.1", started.port);
  const header = new Uint8Array(8);
  new DataView(header.buffer).setUint32(0, 0x8000_0000 + RPC_RECORD_BYTES_MAX + 1);
  await bad.sendRaw(header);
  await bad.waitForClose();
  assert.deepEqual(await echo(good, Uint8Array.of(5)), Uint8Array.of(5));
  await turnsUntil(() => started.server.connectionCount === 1);
});

test("server: a connection cut with calls in flight logs once, at warn, and its late replies go nowhere", async () => {
  const lines: { level: number; msg: string; component?: string }[] = [];
  const logger = pino({ level: "debug" }, { write: (line: string) => lines.push(JSON.parse(line)) });
  await using started = await startServer({ logger });
  await using client = await RpcClient.connect("127.0.0.1", started.port);
  const inFlight = client.call(TOY_PROGRAM, 1, ToyProcedure.GATED, u32Args(1));
  const cut = assert.rejects(inFlight, rejectsWithCode("CONNECTION_CLOSED"));
  await started.state.until((state) => state.active === 1);
  const header = new Uint8Array(4);
  new DataView(header.buffer).setUint32(0, 0xffff_ffff);
  await client.sendRaw(header);
  await cut;
  started.state.release();
  await started.state.until((state) => state.active === 0);
  // The rest of the call's completion runs in microtasks: all of it is done by the next turn.
  await new Promise((resolve) => setImmediate(resolve));
  await turnsUntil(() => started.server.connectionCount === 0);
  const warnings = lines.filter((line) => line.level === 40);
  assert.deepEqual(
    warnings.map((line) => [line.component, line.msg]),
    [["rpc", "closing connection: record framing"]],
  );
  assert.ok(
    lines.every((line) => line.level < 50),
    "nothing at error level",
  );
});

test("server: too many fragments in one record closes that connection only", async () => {
  await using started = await startServer();
  await using good = await RpcClient.connect("127.0.0.1", started.port);
  const bad = await RawPeer.connect(started.port);
  const empties = Array.from({ length: RPC_FRAGMENTS_PER_RECORD_MAX + 1 }, () => new Uint8Array(0));
  await bad.send(encodeFragments(empties));
  await bad.closed;
  assert.deepEqual(bad.replies, []);
  assert.deepEqual(await echo(good, Uint8Array.of(6)), Uint8Array.of(6));
});

test("server: a message that is no call (a REPLY, a stub) closes the connection without an answer", async () => {
  await using started = await startServer();
  for (const record of [new XdrWriter().u32(1).u32(1).u32(0).bytes(), Uint8Array.of(1, 2)]) {
    const peer = await RawPeer.connect(started.port);
    await peer.send(concat(encodeRecord([record])));
    await peer.closed;
    assert.deepEqual(peer.replies, []);
  }
  await using client = await RpcClient.connect("127.0.0.1", started.port);
  assert.deepEqual(await echo(client, Uint8Array.of(8)), Uint8Array.of(8));
});

test("server: in-flight calls per connection never exceed the bound; other connections keep going", async () => {
  const bound = 4;
  const callCount = 40;
  await using started = await startServer({ inFlightPerConnectionMax: bound });
  await using client = await RpcClient.connect("127.0.0.1", started.port);
  const pending = gatedCalls(client, callCount);
  await started.state.until((state) => state.active === bound);
  const [stats] = started.server.connectionStats();
  assert.equal(stats?.inFlight, bound);
  assert.equal(stats?.readPaused, true, "reading stops at the bound");
  await using other = await RpcClient.connect("127.0.0.1", started.port);
  assert.deepEqual(await echo(other, Uint8Array.of(9)), Uint8Array.of(9));
  for (let released = 0; released < callCount; released++) {
    await started.state.until((state) => state.waiting > 0);
    started.state.release();
  }
  await assertGatedValues(pending);
  assert.equal(started.state.activeMax, bound);
  assert.equal(started.state.started, callCount);
});

test("server: a client pushing 16 MiB of calls at a blocked server is held off, not buffered", async () => {
  const bound = 2;
  const callCount = 256;
  await using started = await startServer({ inFlightPerConnectionMax: bound });
  await using client = await RpcClient.connect("127.0.0.1", started.port);
  const padding = new Uint8Array(64 * 1024);
  const pending = gatedCalls(client, callCount, padding);
  await started.state.until((state) => state.active === bound);
  const [stats] = started.server.connectionStats();
  assert.equal(stats?.readPaused, true);
  // What was read before the pause took hold: a socket read or two, not the 16 MiB sent.
  assert.ok((stats?.bufferedBytes ?? 0) <= 1024 * 1024, `${stats?.bufferedBytes} bytes held`);
  started.state.openGate();
  await assertGatedValues(pending);
  assert.equal(started.state.activeMax, bound);
});

test("server: a client that does not read its replies stops the server from starting more work", async () => {
  await using started = await startServer({ inFlightPerConnectionMax: 8 });
  const peer = await RawPeer.connect(started.port);
  peer.socket.pause();
  const callCount = 48;
  const payload = new Uint8Array(512 * 1024).fill(7);
  const calls = Array.from({ length: callCount }, (_, i) =>
    concat(
      encodeRecord(
        encodeCall({ xid: i + 1, program: TOY_PROGRAM, version: 1, procedure: 1 }, [echoArgs(payload)]),
      ),
    ),
  );
  for (const call of calls) void peer.send(call);
  await turnsUntil(() => started.server.connectionStats()[0]?.writeBlocked === true);
  const stats = started.server.connectionStats()[0];
  assert.equal(stats?.readPaused, true, "a blocked writer stops reading too");
  peer.socket.resume();
  await peer.untilReplies(callCount);
  assert.deepEqual(
    peer.replies.map((reply) => reply.xid),
    Array.from({ length: callCount }, (_, i) => i + 1),
  );
  assert.ok(
    peer.replies.every((reply) =>
      resultsOf(reply)
        .opaque(payload.length)
        .every((byte) => byte === 7),
    ),
  );
  peer.destroy();
});

test("server: close lets calls in flight finish and their replies go out, and accepts nothing new", async () => {
  await using started = await startServer();
  await using client = await RpcClient.connect("127.0.0.1", started.port);
  const inFlight = client.call(TOY_PROGRAM, 1, ToyProcedure.GATED, u32Args(77));
  await started.state.until((state) => state.active === 1);
  const closing = started.server.close();
  await assert.rejects(RpcClient.connect("127.0.0.1", started.port), /ECONNREFUSED/);
  const late = client.call(TOY_PROGRAM, 1, ToyProcedure.NULL, []);
  const lateFails = assert.rejects(late, rejectsWithCode("CONNECTION_CLOSED"), "a call after close began");
  started.state.release();
  assert.equal(gatedValue(await inFlight), 77);
  await lateFails;
  await closing;
  await client.waitForClose();
  assert.equal(started.server.connectionCount, 0);
});

test("server: close cuts connections whose calls outlast closeTimeoutMs", async () => {
  await using started = await startServer({ closeTimeoutMs: 50 });
  await using client = await RpcClient.connect("127.0.0.1", started.port);
  const stuck = client.call(TOY_PROGRAM, 1, ToyProcedure.GATED, u32Args(1));
  const stuckFails = assert.rejects(stuck, rejectsWithCode("CONNECTION_CLOSED"));
  await started.state.until((state) => state.active === 1);
  await started.server.close();
  await stuckFails;
  assert.equal(started.server.connectionCount, 0);
});

test("server: a client that half-closes after its calls still gets every reply, then the server ends", async () => {
  await using started = await startServer();
  const peer = await RawPeer.connect(started.port, "127.0.0.1", { allowHalfOpen: true });
  const calls = [1, 2, 3].map((xid) =>
    concat(
      encodeRecord(encodeCall({ xid, program: TOY_PROGRAM, version: 3, procedure: ToyProcedure.NULL }, [])),
    ),
  );
  await peer.send(concat(calls));
  peer.socket.end();
  await peer.untilReplies(3);
  await turnsUntil(() => peer.ended);
  assert.deepEqual(
    peer.replies.map((reply) => reply.kind),
    ["success", "success", "success"],
  );
  peer.destroy();
});

test("server: thousands of concurrent calls on one connection, each matched to its reply", async () => {
  await using started = await startServer();
  await using client = await RpcClient.connect("127.0.0.1", started.port);
  const random = new SeededRandom(4);
  const payloads = Array.from({ length: 3000 }, () => random.bytes(random.int(200)));
  const echoed = await Promise.all(payloads.map((payload) => echo(client, payload)));
  assert.deepEqual(echoed, payloads);
});
