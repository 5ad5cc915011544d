/**
 * Chunk migration, re-replication and drain on real storage servers (in this process, loopback TCP),
 * each under a verifying write load: after every scenario each acknowledged write reads back, and all
 * replicas of every chunk are identical.
 */
import assert from "node:assert/strict";
import { afterEach, beforeEach, test } from "node:test";
import type { RemoteBlockDevice } from "../../src/block/remote-device.ts";
import { keys } from "../../src/storage/catalog.ts";
import { takeCensus } from "../../src/storage/chunk-census.ts";
import type { MovePlan } from "../../src/storage/chunk-mover.ts";
import { DrainError, drainServer } from "../../src/storage/drain.ts";
import { ReplicaSupervisor } from "../../src/storage/replica-supervisor.ts";
import { deleteVolume } from "../../src/storage/volumes.ts";
import { StorageTestCluster } from "../support/storage-cluster.ts";
import { replicasAgree, WriteLoad } from "../support/write-load.ts";

const MiB = 1024 * 1024;
const CHUNK_BLOCKS = 256; // 1 MiB chunks: many of them in a small volume
const VOLUME_BYTES = 16 * MiB;
const SPAN = VOLUME_BYTES / 4096;

let cluster: StorageTestCluster;

beforeEach(async () => {
  cluster = await StorageTestCluster.start({ servers: 3, leaseTtlMs: 1000 });
});
afterEach(async () => {
  await cluster.close();
});

async function volumeUnderLoad(rf: number): Promise<{ device: RemoteBlockDevice; load: WriteLoad }> {
  await cluster.createVolume("vol", VOLUME_BYTES, rf, CHUNK_BLOCKS);
  const { device } = await cluster.openDevice("vol");
  const load = new WriteLoad(device, { blockSpan: SPAN, writers: 4, seed: 7 });
  load.start();
  await load.until(50);
  return { device, load };
}

async function settle(device: RemoteBlockDevice, load: WriteLoad): Promise<void> {
  await load.stop();
  assert.deepEqual(load.errors, [], "no client write or flush failed");
  const checked = await load.verify();
  assert.ok(checked > 100, `only ${checked} blocks were written`);
  await replicasAgree(device, cluster.registry);
}

function chunksOn(device: RemoteBlockDevice, serverId: string): number[] {
  const count = Math.ceil(device.volume.blockCount / device.volume.chunkBlocks);
  return Array.from({ length: count }, (_, i) => i).filter((i) =>
    device.routeOf(i).replicas.some((r) => r.serverId === serverId),
  );
}

test("chunks move between servers while the volume is written; nothing acknowledged is lost", async () => {
  const { device, load } = await volumeUnderLoad(1);
  const mover = cluster.mover();
  const plans: MovePlan[] = chunksOn(device, "s1").map((chunkIndex) => ({
    volumeId: "vol",
    chunkIndex,
    from: "s1",
    to: "s2",
    reason: "operator",
    keepSource: false,
  }));
  assert.ok(plans.length > 0);
  await Promise.all(plans.map((plan) => mover.move(plan)));
  assert.deepEqual(chunksOn(device, "s1"), [], "no chunk is routed to s1 any more");
  await settle(device, load);
  assert.equal((await cluster.store.range(keys.movesOf("vol"))).kvs.length, 0, "no move record is left");
});

test("a target that fails mirrored writes: the client never sees it; the copy restarts and ends identical", async () => {
  const { device, load } = await volumeUnderLoad(1);
  const target = cluster.clientOf("s3");
  let restarts = 0;
  const mover = cluster.mover({
    afterCopyStep: async () => {
      // Once per copy: the next two mirrored writes to the target fail.
      if (restarts++ < 3) target.inject({ calls: ["write"], fail: "IO", times: 2 });
      await load.until(40);
    },
  });
  const [chunkIndex] = chunksOn(device, "s1");
  assert.ok(chunkIndex !== undefined);
  await mover.move({
    volumeId: "vol",
    chunkIndex,
    from: "s1",
    to: "s3",
    reason: "operator",
    keepSource: false,
  });
  assert.ok((target.hits.get("write") ?? 0) > 0, "mirrored writes to the target did fail");
  assert.ok(device.routeOf(chunkIndex).replicas.some((r) => r.serverId === "s3" && r.state === "active"));
  await settle(device, load);
});

test("a storage server killed and restarted under load: writes stall, then go on; replicas agree", async () => {
  const { device, load } = await volumeUnderLoad(2);
  await cluster.stopServer("s2", "crash");
  await new Promise((resolve) => setTimeout(resolve, 300));
  await cluster.restartServer("s2");
  await load.until(100);
  await settle(device, load);
});

test("a dead server's chunks are re-replicated from the survivors to restore the factor", async () => {
  const { device, load } = await volumeUnderLoad(2);
  const before = chunksOn(device, "s1").length;
  assert.ok(before > 0);
  const supervisor = new ReplicaSupervisor({
    store: cluster.store,
    registry: cluster.registry,
    mover: cluster.mover(),
    graceMs: 500,
    intervalMs: 100,
  });
  supervisor.start();
  await cluster.stopServer("s1", "crash");
  await cluster.untilGone("s1");
  const deadline = performance.now() + 30_000;
  while (chunksOn(device, "s1").length > 0 || supervisor.progress().underReplicated > 0) {
    assert.ok(performance.now() < deadline, `still ${chunksOn(device, "s1").length} chunks on s1`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await supervisor.close();
  const progress = supervisor.progress();
  assert.ok(progress.repaired >= before, `repaired ${progress.repaired} of ${before}`);
  for (let i = 0; i < Math.ceil(device.volume.blockCount / device.volume.chunkBlocks); i++) {
    assert.equal(device.routeOf(i).replicas.length, 2, `chunk ${i} has its two replicas again`);
  }
  await settle(device, load);
  const census = await takeCensus(cluster.store);
  assert.equal(census.dead.size, 0, "the dead server is forgotten once no route names it");
});

test("drain moves every chunk off a server with progress, and says why when it cannot", async () => {
  const { device, load } = await volumeUnderLoad(2);
  const progress: number[] = [];
  let moved = 0;
  const mover = cluster.mover({
    onProgress: ({ bytes }) => {
      moved += bytes;
    },
  });
  const result = await drainServer(
    {
      store: cluster.store,
      registry: cluster.registry,
      mover,
      onProgress: (p) => progress.push(p.chunksDone),
      bytesMoved: () => moved,
    },
    "s1",
  );
  assert.equal(result.chunksDone, result.chunksTotal);
  assert.ok(progress.length > result.chunksTotal, "progress was reported as chunks finished");
  assert.deepEqual(chunksOn(device, "s1"), []);
  await settle(device, load);
  // With s1 draining and RF=2, s2 cannot be drained: each of its chunks has its other copy on s3.
  await assert.rejects(
    drainServer({ store: cluster.store, registry: cluster.registry, mover }, "s2"),
    (error: unknown) => error instanceof DrainError && /nowhere to go/.test(error.message),
  );
});

test("a mover that dies mid-copy: another resumes the intent and copies only what was left", async () => {
  const { device, load } = await volumeUnderLoad(1);
  const [chunkIndex] = chunksOn(device, "s1");
  assert.ok(chunkIndex !== undefined);
  const plan: MovePlan = {
    volumeId: "vol",
    chunkIndex,
    from: "s1",
    to: "s2",
    reason: "operator",
    keepSource: false,
  };
  // The first mover stops for good after half the chunk (as if its process died) with a checkpoint in the store.
  const dead = cluster.mover({
    checkpointBlocks: 32,
    copyStepBlocks: 32,
    afterCopyStep: async (_, offset) => {
      if (offset >= CHUNK_BLOCKS / 2) await new Promise(() => undefined);
    },
  });
  void dead.move(plan);
  const moveKey = keys.move("vol", chunkIndex);
  for (let i = 0; ; i++) {
    const kv = await cluster.store.get(moveKey);
    if (kv !== undefined && JSON.parse(new TextDecoder().decode(kv.value)).copiedBlocks >= CHUNK_BLOCKS / 2)
      break;
    assert.ok(i < 1000, "the first mover never checkpointed");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  let copied = 0;
  const survivor = cluster.mover({
    checkpointBlocks: 32,
    copyStepBlocks: 32,
    onProgress: ({ bytes }) => (copied += bytes),
  });
  const pending = await survivor.pendingMoves();
  assert.deepEqual(pending, [plan]);
  await survivor.move(pending[0]!);
  assert.ok(
    copied <= (CHUNK_BLOCKS / 2) * 4096,
    `the resumed copy moved ${copied} bytes, more than the half left`,
  );
  await settle(device, load);
});

test("a volume id used again after delete: the new volume opens and writes (its epoch goes on, never back)", async () => {
  await cluster.createVolume("again", VOLUME_BYTES, 2, CHUNK_BLOCKS);
  const { device, epoch } = await cluster.openDevice("again");
  await device.write(0, new Uint8Array(4096).fill(1));
  await device.close();
  await deleteVolume(cluster.store, cluster.registry, "again");
  await assert.rejects(cluster.openDevice("again"), /does not exist/);
  await cluster.createVolume("again", VOLUME_BYTES, 2, CHUNK_BLOCKS);
  const reopened = await cluster.openDevice("again");
  assert.ok(reopened.epoch > epoch, `epoch ${reopened.epoch} after ${epoch}`);
  await reopened.device.write(0, new Uint8Array(4096).fill(2));
  assert.deepEqual(await reopened.device.read(0, 1), new Uint8Array(4096).fill(2));
  await assert.rejects(cluster.createVolume("again", VOLUME_BYTES), /already exists/);
});
