/**
 * Bad input against a real NFS server: mutated NFS calls, truncated arguments, altered handles,
 * unknown programs, versions and procedures, bad credentials, impossible fragment lengths and pure
 * garbage. Each gets its RPC or NFS answer or a closed connection; the server stays up; a second
 * client writing and reading files meanwhile sees every byte it wrote. Seeded: FLOTILLA_FUZZ_SEED.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { pino } from "pino";
import { parseExportRule } from "../../src/nfs/exports.ts";
import { encodeCall, encodeRecord } from "../../src/rpc/index.ts";
import { NfsServer } from "../../src/service/local-server.ts";
import { SeededRandom } from "../../src/util/random.ts";
import { XdrWriter } from "../../src/xdr/index.ts";
import { NFS, NfsTestClient, ROOT_CRED, resultsOf } from "../support/nfs-test-client.ts";
import { RawPeer } from "../support/raw-peer.ts";

const SEED = Number(process.env.FLOTILLA_FUZZ_SEED ?? Date.now() % 1_000_000);
const ROUNDS = Number(process.env.FLOTILLA_FUZZ_ROUNDS ?? 600);
const BADHANDLE = 10001;

const concat = (chunks: readonly Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(chunks));

/** A well-formed NFS call record: procedure and its encoded arguments. */
function record(xid: number, procedure: number, args: Uint8Array, version: number = NFS.version): Uint8Array {
  return concat(
    encodeRecord(
      encodeCall({ xid, program: NFS.program, version, procedure, credential: ROOT_CRED }, [args]),
    ),
  );
}

test(`NFS fuzz: the server answers or closes, stays up, and a bystander's data stays right (seed ${SEED})`, async () => {
  const random = new SeededRandom(SEED);
  const dataDir = await mkdtemp(join(tmpdir(), "flotilla-nfs-fuzz-"));
  const server = await NfsServer.start({
    dataDir,
    listen: "127.0.0.1",
    nfsPort: 0,
    mountPort: 0,
    portmapPort: null,
    sizeBytes: 256 * 1024 * 1024,
    exports: [parseExportRule("127.0.0.1(rw,no_root_squash)")],
    logger: pino({ level: "silent" }),
  });
  const bystander = await NfsTestClient.connect("127.0.0.1", server.nfsPort);
  const checker = await NfsTestClient.connect("127.0.0.1", server.nfsPort);
  try {
    const mounter = await NfsTestClient.connect("127.0.0.1", server.mountPort);
    const root = await mounter.mount("/");
    await mounter.close();

    // The bystander's work: files written with FILE_SYNC and read back, all through the fuzzing.
    let bystanderRounds = 0;
    let fuzzing = true;
    const bystanderWork = (async () => {
      const data = new Uint8Array(32 * 1024).map((_, i) => (i * 31) & 0xff);
      while (fuzzing || bystanderRounds < 5) {
        const name = `bystander-${bystanderRounds}`;
        const made = await bystander.create(root, name);
        assert.equal(made.status, 0, `bystander CREATE ${name}`);
        const written = await bystander.write(made.handle!, 0, data, 2);
        assert.equal(written.status, 0, `bystander WRITE ${name}`);
        const back = await bystander.read(made.handle!, 0, data.length);
        assert.deepEqual(back.data, data, `bystander READ ${name}`);
        assert.equal(await bystander.remove(root, name), 0);
        bystanderRounds++;
      }
    })();

    const getattrArgs = new XdrWriter().opaque(root).bytes();
    const writeArgs = new XdrWriter()
      .opaque(root)
      .u64(0)
      .u32(4)
      .u32(0)
      .opaque(new Uint8Array([1, 2, 3, 4]))
      .bytes();
    const lookupArgs = new XdrWriter().opaque(root).string("x").bytes();
    const valid = [
      [1, getattrArgs],
      [7, writeArgs],
      [3, lookupArgs],
      [16, new XdrWriter().opaque(root).u64(0).u64(0).u32(4096).bytes()],
    ] as const;

    let peer = await RawPeer.connect(server.nfsPort);
    let closedConnections = 0;
    for (let round = 0; round < ROUNDS; round++) {
      if (peer.socket.destroyed) {
        closedConnections++;
        peer = await RawPeer.connect(server.nfsPort);
      }
      const kind = random.int(7);
      const [procedure, args] = valid[random.int(valid.length)]!;
      const xid = 0x1000_0000 + round;
      if (kind === 0) {
        // Flipped bytes anywhere in a valid call: any answer, or a closed connection.
        const bytes = record(xid, procedure, args);
        for (let flips = 1 + random.int(4); flips > 0; flips--)
          bytes[4 + random.int(bytes.length - 4)]! ^= 1 + random.int(255);
        await peer.send(bytes);
      } else if (kind === 1) {
        // Arguments cut short: GARBAGE_ARGS.
        const cut = args.subarray(0, random.int(Math.min(args.length, 40)));
        const reply = await checker.rpc.call(NFS.program, NFS.version, procedure, cut, {
          credential: ROOT_CRED,
        });
        assert.equal(reply.kind, "garbage-args", `round ${round}: truncated args of procedure ${procedure}`);
      } else if (kind === 2) {
        // An altered handle: BADHANDLE.
        const handle = root.slice();
        handle[random.int(handle.length)]! ^= 1 + random.int(255);
        const r = resultsOf(await checker.nfs(1, new XdrWriter().opaque(handle).bytes()));
        assert.equal(r.u32(), BADHANDLE, `round ${round}: altered handle`);
      } else if (kind === 3) {
        // Unknown procedure, version, program.
        const p = await checker.rpc.call(NFS.program, NFS.version, 22 + random.int(1000), args, {
          credential: ROOT_CRED,
        });
        assert.equal(p.kind, "proc-unavail");
        const v = await checker.rpc.call(NFS.program, 4 + random.int(10), 0, new Uint8Array(0));
        assert.equal(v.kind, "prog-mismatch");
        const g = await checker.rpc.call(200_000 + random.int(1000), 1, 0, new Uint8Array(0));
        assert.equal(g.kind, "prog-unavail");
      } else if (kind === 4) {
        // A credential that claims AUTH_SYS but is not: AUTH_ERROR.
        const body = random.bytes(random.int(60));
        const reply = await checker.rpc.call(NFS.program, NFS.version, 1, getattrArgs, {
          credential: { flavor: 1, body },
        });
        assert.ok(
          reply.kind === "auth-error" || reply.kind === "success",
          `round ${round}: bad AUTH_SYS got ${reply.kind}`,
        );
      } else if (kind === 5) {
        // A fragment length far over the bound: the server closes this connection.
        const header = new Uint8Array(4);
        new DataView(header.buffer).setUint32(0, 0x8000_0000 | (0x7fff_0000 + random.int(0xffff)));
        await peer.send(header);
        await peer.closed;
      } else {
        // Garbage framed as a record.
        await peer.send(concat(encodeRecord([random.bytes(random.int(200))])));
      }
    }
    fuzzing = false;
    await bystanderWork;
    assert.deepEqual(peer.malformed, [], "every reply the server sent is well-formed");
    assert.ok(bystanderRounds >= 5, `the bystander completed ${bystanderRounds} rounds`);
    assert.ok(closedConnections > 0, "the oversized fragments closed connections");
    const after = await NfsTestClient.connect("127.0.0.1", server.nfsPort);
    assert.equal(resultsOf(await after.nfs(1, getattrArgs)).u32(), 0, "the server still serves");
    await after.close();
    peer.destroy();
  } finally {
    await bystander.close();
    await checker.close();
    await server.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
});
