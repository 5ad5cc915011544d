// The conformance check itself, against hand-made RPC records: it must pass well-formed NFS traffic
// on a non-standard port and catch a malformed call. No NFS server is needed.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { connect, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { assertToolsPresent, integrationSkipReason } from "./tools.ts";
import { assertConformant, startCapture } from "./tshark.ts";

const NFS_PROGRAM = 100003;
const LAST_FRAGMENT = 0x80000000;
const NFS3ERR_STALE = 70;
const TEST_MS_MAX = 120_000;

/** One RPC record (a single last fragment) with an AUTH_NONE call header followed by `args`. */
function callRecord(xid: number, procedure: number, args: Buffer): Buffer {
  const words = [xid, 0 /* CALL */, 2 /* RPC version */, NFS_PROGRAM, 3, procedure, 0, 0, 0, 0];
  const header = Buffer.alloc(4 + words.length * 4);
  header.writeUInt32BE((LAST_FRAGMENT | (words.length * 4 + args.length)) >>> 0, 0);
  for (const [i, word] of words.entries()) header.writeUInt32BE(word, 4 + i * 4);
  return Buffer.concat([header, args]);
}

/** An accepted, successful reply whose results are `results` (32-bit words). */
function reply(xid: number, results: readonly number[]): Buffer {
  const words = [
    xid,
    1 /* REPLY */,
    0 /* MSG_ACCEPTED */,
    0,
    0 /* AUTH_NONE verifier */,
    0 /* SUCCESS */,
    ...results,
  ];
  const record = Buffer.alloc(4 + words.length * 4);
  record.writeUInt32BE((LAST_FRAGMENT | (words.length * 4)) >>> 0, 0);
  for (const [i, word] of words.entries()) record.writeUInt32BE(word, 4 + i * 4);
  return record;
}

/** Sends `record` and waits for `replyBytes` bytes back (0: none expected; then waits for the close). */
async function exchange(port: number, record: Buffer, replyBytes: number): Promise<void> {
  const socket = connect({ host: "127.0.0.1", port });
  await new Promise<void>((resolve, reject) => {
    let received = 0;
    socket.on("data", (chunk: Buffer) => {
      received += chunk.length;
      if (received >= replyBytes) socket.end();
    });
    socket.on("error", reject);
    socket.on("close", () => resolve());
    socket.on("connect", () => {
      socket.write(record);
      if (replyBytes === 0) socket.end();
    });
  });
}

const skip = integrationSkipReason(["tshark"]);

describe("tshark conformance check", { skip, timeout: TEST_MS_MAX }, () => {
  let dir = "";
  let server: Server;
  let port = 0;
  const sockets = new Set<Socket>();

  before(async () => {
    assertToolsPresent(["tshark"]);
    dir = await mkdtemp(join(tmpdir(), "flotilla-tshark-"));
    // Answers a GETATTR call (one record per chunk, as these tests send them) with NFS3ERR_STALE.
    server = createServer((socket) => {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      socket.on("error", () => {});
      socket.on("data", (chunk: Buffer) => {
        if (chunk.length >= 28 && chunk.readUInt32BE(24) === 1)
          socket.write(reply(chunk.readUInt32BE(4), [NFS3ERR_STALE]));
      });
      socket.on("end", () => socket.end());
    });
    await new Promise<void>((resolve) => server.listen({ host: "127.0.0.1", port: 0 }, resolve));
    const address = server.address();
    assert.ok(address !== null && typeof address === "object");
    port = address.port;
  });

  after(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await rm(dir, { recursive: true, force: true });
  });

  test("a well-formed GETATTR call and reply on a non-standard port pass", async () => {
    await using capture = await startCapture({ ports: [port], file: join(dir, "good.pcap") });
    const handle = Buffer.alloc(4 + 32, 0x5a);
    handle.writeUInt32BE(32, 0);
    await exchange(port, callRecord(0x1234, 1, handle), 32);
    const report = await capture.finish();
    assert.equal(
      report.nfsFrames >= 2,
      true,
      `expected the call and the reply decoded as NFS, got ${JSON.stringify(report)}`,
    );
    assertConformant(report, { nfs: true });
  });

  test("a GETATTR call whose file handle is cut short is reported as malformed", async () => {
    await using capture = await startCapture({ ports: [port], file: join(dir, "bad.pcap") });
    const truncatedHandle = Buffer.alloc(8);
    truncatedHandle.writeUInt32BE(32, 0); // says 32 bytes of handle; 4 follow
    await exchange(port, callRecord(0x5678, 1, truncatedHandle), 0);
    const report = await capture.finish();
    assert.ok(report.problems.length > 0, `expected a malformed frame, got ${JSON.stringify(report)}`);
    assert.throws(() => assertConformant(report), /malformed packet/);
  });
});
