/**
 * Live moves on a three-node cluster in this process (embedded store, real storage servers, real
 * sockets): the vserver's reply cache, mount list and write verifier arrive on the target; a CREATE
 * retransmitted after the move (same xid) is answered from the moved cache, not run again; refusals
 * for a pinned vserver, a dead target and a target without room for the pages, each leaving the
 * vserver serving where it was.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { pino } from "pino";
import { readClusterSnapshot } from "../../src/cluster/cluster-view.ts";
import { AdminError, createVserver, setNodeState, setPinned } from "../../src/cluster/desired-state.ts";
import { requestLiveMove } from "../../src/cluster/live-move.ts";
import { LocalCluster } from "../../src/cluster/local-cluster.ts";
import { createVolume } from "../../src/storage/volumes.ts";
import { EmbeddedStore } from "../../src/store/index.ts";
import { NfsTestClient } from "../support/nfs-test-client.ts";
import { until } from "../support/until.ts";

const MiB = 1024 * 1024;
const FILE_SYNC = 2;
const logger = pino({ level: process.env.FLOTILLA_TEST_LOG ?? "silent" });
const NODES = ["n1", "n2", "n3"];
const NFS_PORT = 20_000 + Math.floor(Math.random() * 20_000);
const MOUNT_PORT = NFS_PORT + 1;
const VIP = "127.0.31.1";

let root: string;
let store: EmbeddedStore;
let cluster: LocalCluster;

before(async () => {
  root = await mkdtemp(join(tmpdir(), "flotilla-live-move-"));
  store = new EmbeddedStore();
  cluster = await LocalCluster.start({
    dataDir: root,
    store,
    nodeIds: NODES,
    leaseTtlMs: 600,
    storageLeaseTtlMs: 600,
    storageGraceMs: 600,
    capacityBytes: 4 * 1024 * MiB,
    policy: { nodeSettleMs: 1500, moveCooldownMs: 500 },
    // n3 has room for a few pages only: a live move to it is refused for want of memory.
    statePagesMaxByNode: { n3: 4 },
    logger,
  });
  await createVolume(store, cluster.registry, {
    volumeId: "vol-lm",
    sizeBytes: 32 * MiB,
    replicationFactor: 2,
    chunkBlocks: 256,
  });
  await createVserver(store, {
    id: "lm",
    vips: [VIP, "127.0.31.2"],
    volumes: ["vol-lm"],
    pinned: false,
    priority: 0,
    nfsPort: NFS_PORT,
    mountPort: MOUNT_PORT,
  });
});

after(async () => {
  await cluster.stop();
  await store.close();
  await rm(root, { recursive: true, force: true });
});

function runningOn(notOn?: string): Promise<{ nodeId: string; liveFrom: string | null }> {
  return until("lm to run", async () => {
    const snapshot = await readClusterSnapshot(store);
    const placement = snapshot.placements.get("lm")?.record;
    const running = snapshot.running.get("lm");
    if (placement === undefined || running === undefined) return undefined;
    if (running.nodeId !== placement.node || running.generation !== placement.generation) return undefined;
    if (running.nodeId === notOn) return undefined;
    return running;
  });
}

async function connect(): Promise<{ nfs: NfsTestClient; mountd: NfsTestClient; root: Uint8Array }> {
  const mountd = await NfsTestClient.connect(VIP, MOUNT_PORT);
  const handle = await mountd.mount("/");
  return { mountd, nfs: await NfsTestClient.connect(VIP, NFS_PORT), root: handle };
}

test("a live move carries the reply cache, the mount list and the write verifier; a retransmitted CREATE is not run again", async () => {
  const from = (await runningOn()).nodeId;
  const before = await connect();
  const xid = 0x5eed_0001;
  const created = await before.nfs.create(before.root, "once", xid);
  assert.equal(created.status, 0);
  const data = new Uint8Array(100_000).map((_, i) => (i * 13) & 0xff);
  const written = await before.nfs.write(created.handle!, 0, data, FILE_SYNC);
  assert.equal(written.status, 0);
  await Promise.all([before.nfs.close(), before.mountd.close()]);

  const to = NODES.find((n) => n !== from && n !== "n3")!;
  const outcome = await requestLiveMove(store, "lm", to, { force: false });
  assert.equal(outcome.state, "done", outcome.reason ?? "");
  assert.ok(outcome.pagesSent >= 1 && outcome.rounds >= 1, JSON.stringify(outcome));
  const now = await runningOn(from);
  assert.deepEqual(now, { ...now, nodeId: to, liveFrom: from });

  const after = await NfsTestClient.connect(VIP, NFS_PORT);
  // The same xid, arguments and client address: a guarded CREATE run again would say EXIST.
  const again = await after.create(before.root, "once", xid);
  assert.equal(again.status, 0, "the retransmission is answered from the moved reply cache");
  assert.deepEqual(again.handle, created.handle);
  const fresh = await after.create(before.root, "once", xid + 1);
  assert.equal(fresh.status, 17, "a new CREATE of the same name is run, and finds it there");
  const rewritten = await after.write(created.handle!, 0, data.subarray(0, 10), FILE_SYNC);
  assert.equal(rewritten.verifier, written.verifier, "the write verifier moved with the vserver");
  const read = await after.read(created.handle!, 0, data.length);
  assert.deepEqual(read.data?.subarray(10), data.subarray(10));
  await after.close();
  const mountd = await NfsTestClient.connect(VIP, MOUNT_PORT);
  const listed = await mountd.dump();
  await mountd.close();
  assert.ok(
    listed.some((m) => m.host === "127.0.0.1" && m.path === "/"),
    `DUMP lists the client mounted before the move: ${JSON.stringify(listed)}`,
  );
});

test("a drain moves a running vserver live: the planner asks its node for the move, the reply cache goes along", async () => {
  const from = (await runningOn()).nodeId;
  const to = NODES.find((n) => n !== from && n !== "n3")!;
  const client = await connect();
  const xid = 0x5eed_0100;
  const created = await client.nfs.create(client.root, "drained", xid);
  assert.equal(created.status, 0);
  await Promise.all([client.nfs.close(), client.mountd.close()]);
  // n3 is too small for a live move; out of the way, the drain's only target is `to`.
  await setNodeState(store, "n3", "disabled");
  await setNodeState(store, from, "draining");
  try {
    const now = await runningOn(from);
    assert.deepEqual(now, { ...now, nodeId: to, liveFrom: from }, "started from the moved state");
    const move = (await readClusterSnapshot(store)).migrations.get("lm")?.record;
    assert.equal(move?.state, "done", JSON.stringify(move));
    assert.deepEqual([move?.from, move?.to, move?.force], [from, to, true]);
    const after = await NfsTestClient.connect(VIP, NFS_PORT);
    const again = await after.create(client.root, "drained", xid);
    await after.close();
    assert.equal(again.status, 0, "the retransmitted CREATE is answered from the moved cache");
  } finally {
    await setNodeState(store, from, "enabled");
    await setNodeState(store, "n3", "enabled");
  }
});

test("live moves are refused, and the vserver keeps serving, for a pinned vserver, a dead target and a target without room", async () => {
  const from = (await runningOn()).nodeId;
  const other = NODES.find((n) => n !== from && n !== "n3")!;
  await setPinned(store, "lm", true);
  await assert.rejects(requestLiveMove(store, "lm", other, { force: false }), (error: unknown) => {
    assert.ok(
      error instanceof AdminError && error.code === "CONFLICT" && /pinned.*--force/.test(error.message),
    );
    return true;
  });
  await setPinned(store, "lm", false);
  assert.notEqual(from, "n3", "the first test moved it off the small node");
  await assert.rejects(requestLiveMove(store, "lm", "n3", { force: false }), /free service-state pages/);
  await cluster.killNode(other);
  await until("the killed node to leave", async () =>
    (await readClusterSnapshot(store)).nodes.has(other) ? undefined : true,
  );
  await assert.rejects(requestLiveMove(store, "lm", other, { force: false }), /dead/);
  assert.equal((await runningOn()).nodeId, from);
  const client = await connect();
  assert.equal((await client.nfs.lookup(client.root, "once")).status, 0);
  await Promise.all([client.nfs.close(), client.mountd.close()]);
});
