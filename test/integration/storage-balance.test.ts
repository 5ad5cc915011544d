/**
 * The storage balancer on real servers: a skewed load (the hot chunks all on one server) under a
 * verifying write load. The balancer moves chunks off the hot server until max/mean falls within
 * 1.2; every acknowledged write reads back, and the replicas of every chunk agree.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { pino } from "pino";
import { BLOCK_BYTES } from "../../src/block/types.ts";
import { currentLoadRatio, StorageBalancer } from "../../src/storage/balancer.ts";
import { takeCensus } from "../../src/storage/chunk-census.ts";
import { StorageTestCluster } from "../support/storage-cluster.ts";
import { replicasAgree } from "../support/write-load.ts";

const MiB = 1024 * 1024;
const CHUNK_BLOCKS = 64;
let cluster: StorageTestCluster;

before(async () => {
  cluster = await StorageTestCluster.start({ servers: 4 });
});

after(async () => {
  await cluster.close();
});

function measuredRatio(): Promise<number> {
  return currentLoadRatio(cluster.store, cluster.registry);
}

test("storage balance: hot chunks on one server are spread until max/mean <= 1.2; nothing acknowledged is lost", async () => {
  await cluster.createVolume("vbal", 16 * MiB, 2, CHUNK_BLOCKS);
  const { device } = await cluster.openDevice("vbal");
  const census = await takeCensus(cluster.store);
  const hotServer = census.chunks[0]!.route.replicas[0]!.serverId;
  // Every chunk with a replica on the hot server is written to; the others stay idle.
  const hot = census.chunks
    .filter((c) => c.route.replicas.some((r) => r.serverId === hotServer))
    .map((c) => c.chunkIndex);
  assert.ok(hot.length >= 4, `${hot.length} chunks on ${hotServer}`);
  const written = new Map<number, number>();
  let stop = false;
  let sequence = 0;
  const writer = (async () => {
    while (!stop) {
      const chunkIndex = hot[sequence % hot.length]!;
      const block = chunkIndex * CHUNK_BLOCKS + (Math.floor(sequence / hot.length) % CHUNK_BLOCKS);
      const value = ++sequence;
      const data = new Uint8Array(BLOCK_BYTES);
      new DataView(data.buffer).setUint32(0, value);
      await device.write(block, data);
      await device.flush();
      written.set(block, value);
    }
  })();
  const balancer = new StorageBalancer({
    store: cluster.store,
    registry: cluster.registry,
    mover: cluster.mover(),
    auto: false,
    logger: pino({ level: process.env.FLOTILLA_TEST_LOG ?? "silent" }),
  });
  try {
    let before = 0;
    const deadline = performance.now() + 90_000;
    let ratio = Number.POSITIVE_INFINITY;
    while (performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 2500));
      ratio = await measuredRatio();
      if (before === 0 && ratio > 1) before = ratio;
      if (ratio <= 1.2 && balancer.counters.moved > 0) break;
      await balancer.applyOnce();
      await balancer.settled();
    }
    console.log(
      `max/mean load ${before.toFixed(2)} -> ${ratio.toFixed(2)}; ${balancer.counters.moved} chunks moved, ${balancer.counters.failed} failed, ${sequence} blocks written`,
    );
    assert.ok(before > 1.5, `the load starts skewed: ${before}`);
    assert.ok(ratio <= 1.2, `balanced: ${ratio}`);
    assert.equal(balancer.counters.failed, 0);
  } finally {
    stop = true;
    await writer;
    await balancer.close();
  }
  for (const [block, value] of written) {
    const data = await device.read(block, 1);
    assert.equal(new DataView(data.buffer, data.byteOffset).getUint32(0), value, `block ${block}`);
  }
  await replicasAgree(device, cluster.registry);
  await device.close();
});
