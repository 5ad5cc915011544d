/**
 * The storage balancer on real servers: a skewed load (the hot chunks all on one server) under a
 * verifying write load. The balancer moves chunks off the hot server until max/mean falls within
 * 1.2; every acknowledged write reads back, and the replicas of every chunk agree.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { pino } from "pino";
import { currentLoadRatio, StorageBalancer } from "../../src/storage/balancer.ts";
import { balanceUntilSpread, SkewedWriter } from "../support/skewed-writer.ts";
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
  const writer = await SkewedWriter.start(cluster.store, device, CHUNK_BLOCKS);
  const balancer = new StorageBalancer({
    store: cluster.store,
    registry: cluster.registry,
    mover: cluster.mover(),
    auto: false,
    logger: pino({ level: process.env.FLOTILLA_TEST_LOG ?? "silent" }),
  });
  try {
    const { before, after: ratio } = await balanceUntilSpread(measuredRatio, balancer);
    console.log(
      `max/mean load ${before.toFixed(2)} -> ${ratio.toFixed(2)}; ${balancer.counters.moved} chunks moved, ${balancer.counters.failed} failed, ${writer.writes} blocks written`,
    );
    assert.ok(before > 1.5, `the load starts skewed: ${before}`);
    assert.ok(ratio <= 1.2, `balanced: ${ratio}`);
    assert.equal(balancer.counters.failed, 0);
  } finally {
    await writer.stop();
    await balancer.close();
  }
  await writer.verify();
  await replicasAgree(device, cluster.registry);
  await device.close();
});
