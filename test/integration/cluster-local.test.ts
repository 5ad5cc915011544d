/**
 * A three-node cluster in this process on the embedded store: a vserver is placed and served on its
 * VIPs; its node crashes and it fails over with its data and handles; a pinned vserver stays down
 * with a reason; a handle of one vserver is refused by another; an operator move and a drain move
 * vservers; a clean stop and start finds everything where it was.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { pino } from "pino";
import { readClusterSnapshot } from "../../src/cluster/cluster-view.ts";
import { createVserver, moveVserver, setNodeState } from "../../src/cluster/desired-state.ts";
import { LocalCluster } from "../../src/cluster/local-cluster.ts";
import { createVolume } from "../../src/storage/volumes.ts";
import { EmbeddedStore } from "../../src/store/index.ts";
import { NfsTestClient } from "../support/nfs-test-client.ts";
import { until } from "../support/until.ts";

const MiB = 1024 * 1024;
const FILE_SYNC = 2;
const NFS3ERR_BADHANDLE = 10001;
const logger = pino({ level: process.env.FLOTILLA_TEST_LOG ?? "silent" });
const NODES = ["n1", "n2", "n3"];
// Every vserver of a cluster answers on the same ports on all its VIPs; pick them per run.
const NFS_PORT = 20_000 + Math.floor(Math.random() * 20_000);
const MOUNT_PORT = NFS_PORT + 1;

let root: string;
let store: EmbeddedStore;
let cluster: LocalCluster;

async function startCluster(): Promise<LocalCluster> {
  return LocalCluster.start({
    dataDir: root,
    store,
    nodeIds: NODES,
    leaseTtlMs: 600,
    storageLeaseTtlMs: 600,
    storageGraceMs: 600,
    // Nodes start one after another; on a loaded machine the last one is up seconds after the
    // first became master, and a restart must still find each vserver where it was.
    takeoverGraceMs: 6000,
    capacityBytes: 4 * 1024 * MiB,
    policy: { nodeSettleMs: 1500, moveCooldownMs: 500 },
    logger,
  });
}

before(async () => {
  root = await mkdtemp(join(tmpdir(), "flotilla-cluster-"));
  store = new EmbeddedStore();
  cluster = await startCluster();
});

after(async () => {
  await cluster.stop();
  await store.close();
  await rm(root, { recursive: true, force: true });
});

/** The node serving the vserver at its current placement, once it does. */
function servedBy(vserverId: string, notOn?: string): Promise<string> {
  return until(`${vserverId} to run${notOn === undefined ? "" : ` off ${notOn}`}`, async () => {
    const snapshot = await readClusterSnapshot(store);
    const placement = snapshot.placements.get(vserverId)?.record;
    const running = snapshot.running.get(vserverId);
    if (placement === undefined || running === undefined) return undefined;
    if (running.nodeId !== placement.node || running.generation !== placement.generation) return undefined;
    if (running.nodeId === notOn) return undefined;
    return running.nodeId;
  });
}

async function makeVserver(id: string, vips: string[], pinned = false, priority = 0): Promise<void> {
  await createVolume(store, cluster.registry, {
    volumeId: `vol-${id}`,
    sizeBytes: 32 * MiB,
    replicationFactor: 2,
    chunkBlocks: 256,
  });
  await createVserver(store, {
    id,
    vips,
    volumes: [`vol-${id}`],
    pinned,
    priority,
    nfsPort: NFS_PORT,
    mountPort: MOUNT_PORT,
  });
}

async function rootVia(vip: string): Promise<{ nfs: NfsTestClient; root: Uint8Array }> {
  const mountd = await NfsTestClient.connect(vip, MOUNT_PORT);
  const handle = await mountd.mount("/");
  await mountd.close();
  return { nfs: await NfsTestClient.connect(vip, NFS_PORT), root: handle };
}

test("a vserver fails over when its node crashes, with its FILE_SYNC data and handles", async () => {
  await makeVserver("alpha", ["127.0.21.1", "127.0.21.2"]);
  await makeVserver("beta", ["127.0.22.1", "127.0.22.2"]);
  const first = await servedBy("alpha");
  const betaNode = await servedBy("beta");
  assert.notEqual(first, betaNode, "two vservers on an idle cluster go to different nodes");

  const one = await rootVia("127.0.21.1");
  const created = await one.nfs.create(one.root, "survivor");
  assert.equal(created.status, 0);
  const file = created.handle!;
  const data = new Uint8Array(200_000).map((_, i) => (i * 7) & 0xff);
  assert.equal((await one.nfs.write(file, 0, data, FILE_SYNC)).status, 0);
  await one.nfs.close();

  // Isolation: beta refuses alpha's handles.
  const stranger = await rootVia("127.0.22.1");
  assert.equal(await stranger.nfs.getattrStatus(file), NFS3ERR_BADHANDLE);
  await stranger.nfs.close();

  const killedAt = Date.now();
  await cluster.killNode(first);
  const second = await servedBy("alpha", first);
  const failoverMs = Date.now() - killedAt;
  assert.notEqual(second, first);
  const again = await rootVia("127.0.21.2");
  const read = await again.nfs.read(file, 0, data.length);
  assert.equal(read.status, 0, "the handle from before the crash still works");
  assert.deepEqual(read.data, data, "the FILE_SYNC write survived the crash");
  await again.nfs.close();
  logger.info({ failoverMs }, "failover");

  await cluster.startNode(first);
});

test("a pinned vserver stays down with a reason when its node dies, and runs again when it returns", async () => {
  await makeVserver("pinned", ["127.0.23.1", "127.0.23.2"], true);
  const node = await servedBy("pinned");
  await cluster.killNode(node);
  const blocked = await until("the pinned vserver to be blocked", async () => {
    const snapshot = await readClusterSnapshot(store);
    return snapshot.placements.get("pinned")?.record.blocked ?? undefined;
  });
  assert.deepEqual(blocked, { code: "pinned-node-dead", node });
  const snapshot = await readClusterSnapshot(store);
  assert.equal(snapshot.placements.get("pinned")?.record.node, node, "it was not moved");
  await cluster.startNode(node);
  assert.equal(await servedBy("pinned"), node, "it runs again on its own node");
});

test("an operator move and a drain move vservers; a move to a dead node is refused", async () => {
  const from = await servedBy("beta");
  const to = NODES.find((n) => n !== from)!;
  await moveVserver(store, "beta", to);
  assert.equal(await servedBy("beta", from), to);
  await setNodeState(store, to, "draining");
  const after = await servedBy("beta", to);
  assert.notEqual(after, to);
  await setNodeState(store, to, "enabled");
  await cluster.killNode(to);
  await until("the node to be seen dead", async () =>
    (await readClusterSnapshot(store)).nodes.has(to) ? undefined : true,
  );
  await assert.rejects(moveVserver(store, "beta", to), /dead/);
  await cluster.startNode(to);
});

test("a vserver with two volumes exports them as / and /VOLUME, each with its own files, through a failover", async () => {
  await createVolume(store, cluster.registry, {
    volumeId: "duo-a",
    sizeBytes: 32 * MiB,
    replicationFactor: 2,
    chunkBlocks: 256,
  });
  await createVolume(store, cluster.registry, {
    volumeId: "duo-b",
    sizeBytes: 32 * MiB,
    replicationFactor: 2,
    chunkBlocks: 256,
  });
  await createVserver(store, {
    id: "duo",
    vips: ["127.0.24.1", "127.0.24.2"],
    volumes: ["duo-a", "duo-b"],
    nfsPort: NFS_PORT,
    mountPort: MOUNT_PORT,
  });
  const node = await servedBy("duo");
  const mountd = await NfsTestClient.connect("127.0.24.1", MOUNT_PORT);
  const rootA = await mountd.mount("/");
  const rootB = await mountd.mount("/duo-b");
  await mountd.close();
  assert.notDeepEqual(rootA, rootB, "two volumes, two roots");
  const nfs = await NfsTestClient.connect("127.0.24.1", NFS_PORT);
  const inA = await nfs.create(rootA, "in-a");
  const inB = await nfs.create(rootB, "in-b");
  assert.equal(inA.status, 0);
  assert.equal(inB.status, 0);
  const dataB = new Uint8Array(50_000).fill(0xb);
  assert.equal((await nfs.write(inB.handle!, 0, dataB, FILE_SYNC)).status, 0);
  // Namespace changes become durable with the next transaction group (or a stable write): make it so.
  assert.equal((await nfs.write(inA.handle!, 0, new Uint8Array(10).fill(0xa), FILE_SYNC)).status, 0);
  assert.equal(
    (await nfs.lookup(rootA, "in-b")).status,
    2,
    "a file of one volume is not in the other (NOENT)",
  );
  assert.equal((await nfs.lookup(rootB, "in-a")).status, 2);
  await nfs.close();

  await cluster.killNode(node);
  await servedBy("duo", node);
  const again = await NfsTestClient.connect("127.0.24.2", NFS_PORT);
  const read = await again.read(inB.handle!, 0, dataB.length);
  assert.equal(read.status, 0, "the second volume's handle still works after the failover");
  assert.deepEqual(read.data, dataB);
  assert.equal((await again.lookup(rootA, "in-a")).status, 0);
  await again.close();
  await cluster.startNode(node);
});

test("a clean stop and start of the whole cluster finds every vserver and its data", async () => {
  const node = await servedBy("alpha");
  const one = await rootVia("127.0.21.1");
  const found = await one.nfs.lookup(one.root, "survivor");
  assert.equal(found.status, 0);
  await one.nfs.close();
  await cluster.stop();
  cluster = await startCluster();
  assert.equal(await servedBy("alpha"), node, "it comes back on the node it was on");
  const two = await rootVia("127.0.21.2");
  assert.equal((await two.nfs.lookup(two.root, "survivor")).status, 0, "the file is still there");
  await two.nfs.close();
});
