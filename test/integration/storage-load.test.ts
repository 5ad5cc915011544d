/**
 * Storage load monitors on real servers: a filer's writes to one chunk of a volume show up in the
 * load records the servers publish under their leases (request rate, bytes, latency, the chunk among
 * the hot ones), on the replicas that hold the chunk and not on the one that does not.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { BLOCK_BYTES } from "../../src/block/types.ts";
import { decodeRecord, keys, LOADS_PREFIX, serverLoadSchema } from "../../src/storage/catalog.ts";
import { readRoute } from "../../src/storage/routing.ts";
import { StorageTestCluster } from "../support/storage-cluster.ts";
import { until } from "../support/until.ts";

const MiB = 1024 * 1024;
let cluster: StorageTestCluster;

before(async () => {
  cluster = await StorageTestCluster.start({ servers: 3 });
});

after(async () => {
  await cluster.close();
});

test("storage load: each server publishes its measured load; the written chunk is hot on its replicas only", async () => {
  await cluster.createVolume("vload", 16 * MiB, 2, 256);
  const { device } = await cluster.openDevice("vload");
  const block = new Uint8Array(BLOCK_BYTES).fill(7);
  // Chunk 1 only (blocks 256..511), sequentially.
  for (let i = 0; i < 400; i++) await device.write(256 + (i % 256), block);
  await device.flush();
  const route = await readRoute(cluster.store, "vload", 1);
  const holders = route.route.replicas.map((r) => r.serverId);
  const loads = await until("load records naming the chunk", async () => {
    const { kvs } = await cluster.store.range(LOADS_PREFIX);
    const records = kvs.map((kv) => decodeRecord(serverLoadSchema, kv.key, kv.value));
    const naming = records.filter((r) =>
      r.hotChunks.some((c) => c.volumeId === "vload" && c.chunkIndex === 1),
    );
    return records.length === 3 && naming.length === holders.length ? records : undefined;
  });
  for (const record of loads) {
    const holds = holders.includes(record.serverId);
    const hot = record.hotChunks.find((c) => c.volumeId === "vload" && c.chunkIndex === 1);
    assert.equal(hot !== undefined, holds, `${record.serverId}: ${JSON.stringify(record.hotChunks)}`);
    if (!holds) continue;
    assert.ok(record.requestsPerSec > 0 && record.writeBytesPerSec > 0, JSON.stringify(record));
    assert.ok(record.latencyP99Ms > 0 && record.latencyP99Ms >= record.latencyP50Ms);
    assert.ok(record.sequentialShare > 0.5, `sequential writes: ${record.sequentialShare}`);
    assert.equal(record.readShare, 0);
    assert.ok(record.networkInBytesPerSec > 0, "its socket bytes are counted");
    assert.ok(record.capacityBytes > 0);
  }
  assert.ok((await cluster.store.get(keys.load(holders[0]!))) !== undefined);
});
