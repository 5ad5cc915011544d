/**
 * Protocol behaviour a real NFS client never exercises, through our own RPC client against a real
 * server on loopback: retransmissions answered from the duplicate request cache, the write verifier
 * across a restart, BAD_COOKIE, READDIR/READDIRPLUS size limits, RPC-level errors, MOUNT.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { pino } from "pino";
import { parseExportRule } from "../../src/nfs/exports.ts";
import { encodeCall } from "../../src/rpc/message.ts";
import { encodeFragments } from "../../src/rpc/record-marking.ts";
import { NfsServer } from "../../src/service/local-server.ts";
import { XdrWriter } from "../../src/xdr/index.ts";
import {
  MOUNT,
  NFS,
  NfsTestClient,
  ROOT_CRED,
  readPostOpAttr,
  resultsOf,
} from "../support/nfs-test-client.ts";

const NFS3ERR_BAD_COOKIE = 10003;
const NFS3ERR_BADHANDLE = 10001;
const NFS3ERR_STALE = 70;
const NFS3ERR_EXIST = 17;
const NFS3ERR_NOENT = 2;
const NFS3ERR_TOOSMALL = 10005;

let dataDir: string;
let server: NfsServer;
let client: NfsTestClient;
let root: Uint8Array;

async function startServer(): Promise<NfsServer> {
  return NfsServer.start({
    dataDir,
    listen: "127.0.0.1",
    nfsPort: 0,
    mountPort: 0,
    portmapPort: 0,
    sizeBytes: 256 * 1024 * 1024,
    exports: [parseExportRule("127.0.0.1(rw,no_root_squash)")],
    logger: pino({ level: "silent" }),
  });
}

async function connect(): Promise<NfsTestClient> {
  return NfsTestClient.connect("127.0.0.1", server.nfsPort);
}

async function mountRoot(): Promise<Uint8Array> {
  const m = await NfsTestClient.connect("127.0.0.1", server.mountPort);
  try {
    return await m.mount("/");
  } finally {
    await m.close();
  }
}

before(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "flotilla-nfs-protocol-"));
  server = await startServer();
  client = await connect();
  root = await mountRoot();
});

after(async () => {
  await client?.close();
  await server?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

async function mkdirUnique(name: string): Promise<Uint8Array> {
  const w = new XdrWriter();
  w.opaque(root).string(name);
  for (let i = 0; i < 6; i++) w.u32(0);
  const r = resultsOf(await client.nfs(9, w.bytes()));
  assert.equal(r.u32(), 0, `MKDIR ${name}`);
  assert.ok(r.bool());
  return r.opaque(64).slice();
}

test("a CREATE replayed with the same xid, on the same and on a new connection, is answered from the cache", async () => {
  const dir = await mkdirUnique("drc");
  const xid = 0x5eed_0001;
  const first = await client.create(dir, "once", xid);
  assert.equal(first.status, 0);
  const again = await client.create(dir, "once", xid);
  assert.equal(again.status, 0, "a replay is not executed again (it would be EXIST)");
  assert.deepEqual(again.handle, first.handle);
  const other = await connect();
  try {
    const replay = await other.create(dir, "once", xid);
    assert.equal(replay.status, 0, "the cache survives a reconnect");
    const fresh = await other.create(dir, "once");
    assert.equal(fresh.status, NFS3ERR_EXIST, "a new xid is a new request");
  } finally {
    await other.close();
  }
  const removed = await client.remove(dir, "once", 0x5eed_0002);
  assert.equal(removed, 0);
  assert.equal(await client.remove(dir, "once", 0x5eed_0002), 0, "a replayed REMOVE is not NOENT");
  assert.equal(await client.remove(dir, "once"), NFS3ERR_NOENT);
});

test("the write verifier stays while the server runs and changes when it restarts; committed data stays", async () => {
  const dir = await mkdirUnique("verifier");
  const { handle } = await client.create(dir, "f");
  assert.ok(handle !== undefined);
  const data = new Uint8Array(10_000).map((_, i) => i % 253);
  const w1 = await client.write(handle, 0, data, 0);
  assert.equal(w1.status, 0);
  assert.equal(w1.committed, 0);
  const c1 = await client.commit(handle);
  assert.equal(c1.verifier, w1.verifier);
  await client.close();
  await server.stop();
  server = await startServer();
  client = await connect();
  const w2 = await client.write(handle, 20_000, data, 2);
  assert.equal(w2.status, 0, "the handle is still valid after a restart");
  assert.equal(w2.committed, 2);
  assert.notEqual(w2.verifier, w1.verifier, "a new server instance has a new verifier");
  const back = await client.read(handle, 0, 10_000);
  assert.deepEqual(back.data, data);
});

test("READDIR with a cookie from before the directory changed gets BAD_COOKIE", async () => {
  const dir = await mkdirUnique("cookies");
  for (let i = 0; i < 20; i++) assert.equal((await client.create(dir, `f${i}`)).status, 0);
  const page = await client.readdir(dir, 0n, 0n, 300);
  assert.equal(page.status, 0);
  assert.ok(page.entries !== undefined && page.entries.length > 0 && page.eof === false);
  const cookie = page.entries[page.entries.length - 1]!.cookie;
  const next = await client.readdir(dir, cookie, page.verifier!, 300);
  assert.equal(next.status, 0, "the same verifier resumes");
  assert.equal((await client.create(dir, "late")).status, 0);
  const stale = await client.readdir(dir, cookie, page.verifier!, 300);
  assert.equal(stale.status, NFS3ERR_BAD_COOKIE);
});

test("READDIR and READDIRPLUS replies never exceed count / maxcount, and list everything across pages", async () => {
  const dir = await mkdirUnique("sizes");
  const names = Array.from({ length: 200 }, (_, i) => `entry-with-a-longer-name-${i}`);
  for (const name of names) assert.equal((await client.create(dir, name)).status, 0);
  for (const count of [300, 1024, 4096, 32_768]) {
    const seen: string[] = [];
    let cookie = 0n;
    let verifier = 0n;
    for (;;) {
      const page = await client.readdir(dir, cookie, verifier, count);
      assert.equal(page.status, 0);
      assert.ok(page.bytes <= count, `READDIR reply of ${page.bytes} bytes for count ${count}`);
      seen.push(...page.entries!.map((e) => e.name));
      if (page.eof) break;
      cookie = page.entries!.at(-1)!.cookie;
      verifier = page.verifier!;
    }
    assert.deepEqual(seen, [".", "..", ...names], `count ${count}`);
  }
  for (const [dircount, maxcount] of [
    [512, 1024],
    [4096, 8192],
    [65_536, 32_768],
  ] as const) {
    const seen: string[] = [];
    let cookie = 0n;
    for (;;) {
      const page = await client.readdirplus(dir, cookie, 0n, dircount, maxcount);
      assert.equal(page.status, 0);
      assert.ok(page.bytes <= maxcount, `READDIRPLUS reply of ${page.bytes} bytes for maxcount ${maxcount}`);
      seen.push(...page.entries.map((e) => e.name));
      if (page.eof) break;
      cookie = page.entries.at(-1)!.cookie;
    }
    assert.equal(seen.length, names.length + 2);
  }
  assert.equal((await client.readdir(dir, 0n, 0n, 50)).status, NFS3ERR_TOOSMALL);
});

test("a call in several record fragments is answered", async () => {
  const w = new XdrWriter();
  w.opaque(root);
  const message = encodeCall({ xid: 0x0f0f_0001, ...NFS, procedure: 1, credential: ROOT_CRED }, [w.bytes()]);
  const whole = Buffer.concat(message);
  const fragments = [whole.subarray(0, 5), whole.subarray(5, 40), whole.subarray(40)];
  const raw = await NfsTestClient.connect("127.0.0.1", server.nfsPort);
  try {
    const reply = raw.rpc.call(NFS.program, NFS.version, 1, w.bytes(), {
      credential: ROOT_CRED,
      xid: 0x0f0f_0002,
    });
    await raw.rpc.sendRaw(encodeFragments(fragments));
    assert.equal(resultsOf(await reply).u32(), 0);
  } finally {
    await raw.close();
  }
});

test("unknown program, other version, unknown procedure and truncated arguments get their RPC answers", async () => {
  const getattrArgs = new XdrWriter().opaque(root).bytes();
  assert.equal((await client.rpc.call(100099, 1, 0, new Uint8Array(0))).kind, "prog-unavail");
  const mismatch = await client.rpc.call(NFS.program, 2, 0, new Uint8Array(0));
  assert.equal(mismatch.kind, "prog-mismatch");
  assert.ok(mismatch.kind === "prog-mismatch" && mismatch.low === 3 && mismatch.high === 3);
  assert.equal(
    (await client.rpc.call(NFS.program, 3, 22, new Uint8Array(0), { credential: ROOT_CRED })).kind,
    "proc-unavail",
  );
  const truncated = getattrArgs.subarray(0, 10);
  assert.equal(
    (await client.rpc.call(NFS.program, 3, 1, truncated, { credential: ROOT_CRED })).kind,
    "garbage-args",
  );
});

test("an altered handle is BADHANDLE; a handle to a removed file is STALE", async () => {
  const dir = await mkdirUnique("handles");
  const { handle } = await client.create(dir, "gone");
  assert.ok(handle !== undefined);
  const altered = handle.slice();
  altered[12]! ^= 1;
  assert.equal(await client.getattrStatus(altered), NFS3ERR_BADHANDLE);
  assert.equal(await client.remove(dir, "gone"), 0);
  assert.equal(await client.getattrStatus(handle), NFS3ERR_STALE);
});

test("MOUNT: NULL, MNT, DUMP, UMNT, UMNTALL and EXPORT", async () => {
  const m = await NfsTestClient.connect("127.0.0.1", server.mountPort);
  try {
    assert.equal((await m.rpc.call(MOUNT.program, 3, 0, new Uint8Array(0))).kind, "success");
    const handle = await m.mount("/");
    assert.equal(await client.getattrStatus(handle), 0);
    // libnfs asks for the empty path when a URL names a file right after the host (nfs://HOST/f.bin).
    assert.deepEqual(await m.mount(""), handle, "MNT of the empty path mounts the root export");
    const missing = resultsOf(
      await m.rpc.call(MOUNT.program, 3, 1, new XdrWriter().string("/no/such").bytes(), {
        credential: ROOT_CRED,
      }),
    );
    assert.equal(missing.u32(), 2, "MNT3ERR_NOENT");
    const dump = resultsOf(await m.rpc.call(MOUNT.program, 3, 2, new Uint8Array(0)));
    const listed: string[] = [];
    while (dump.bool()) {
      dump.string(255);
      listed.push(dump.string(1024));
    }
    assert.ok(listed.includes("/"), `DUMP lists the mount: ${listed.join(", ")}`);
    await m.rpc.call(MOUNT.program, 3, 3, new XdrWriter().string("/").bytes());
    await m.rpc.call(MOUNT.program, 3, 4, new Uint8Array(0));
    const after = resultsOf(await m.rpc.call(MOUNT.program, 3, 2, new Uint8Array(0)));
    assert.equal(after.bool(), false, "UMNT/UMNTALL emptied the list");
    const exports = resultsOf(await m.rpc.call(MOUNT.program, 3, 5, new Uint8Array(0)));
    assert.equal(exports.bool(), true);
    assert.equal(exports.string(1024), "/");
    assert.equal(exports.bool(), true);
    assert.equal(exports.string(255), "127.0.0.1");
  } finally {
    await m.close();
  }
});

test("the portmapper answers GETPORT for NFS and MOUNT", async () => {
  assert.ok(server.portmapPort !== null);
  const p = await NfsTestClient.connect("127.0.0.1", server.portmapPort);
  try {
    for (const [program, port] of [
      [NFS.program, server.nfsPort],
      [MOUNT.program, server.mountPort],
    ] as const) {
      const args = new XdrWriter().u32(program).u32(3).u32(6).u32(0).bytes();
      assert.equal(resultsOf(await p.rpc.call(100000, 2, 3, args)).u32(), port);
    }
  } finally {
    await p.close();
  }
});

test("attributes come back in every LOOKUP", async () => {
  const dir = await mkdirUnique("attrs");
  await client.create(dir, "x");
  const w = new XdrWriter().opaque(dir).string("x").bytes();
  const r = resultsOf(await client.nfs(3, w));
  assert.equal(r.u32(), 0);
  r.opaque(64);
  assert.ok(readPostOpAttr(r) !== undefined);
  assert.ok(readPostOpAttr(r) !== undefined);
});
