import assert from "node:assert/strict";
import { test } from "node:test";
import { MemoryBlockDevice } from "../../../src/block/index.ts";
import { engineOf, mkfs, mount } from "../../../src/fs/index.ts";
import { CountingDevice } from "../../support/counting-device.ts";

const root = { uid: 0, gid: 0, gids: [] };

test("mount reads the superblocks and one root-to-leaf path, however many files the volume holds", async () => {
  const device = new MemoryBlockDevice(65536);
  await mkfs(device);
  const emptyCount = new CountingDevice(new MemoryBlockDevice(65536, device.snapshotBlocks()));
  await (await mount(emptyCount, { txgIntervalMs: 0 })).unmount();
  const volume = await mount(device, { txgIntervalMs: 0 });
  const dir = await volume.mkdir(root, volume.rootRef, "d", {});
  for (let i = 0; i < 20_000; i++)
    await volume.create(root, dir.ref, `f${i}`, { kind: "guarded", attrs: {} });
  await volume.unmount();
  const fullCount = new CountingDevice(new MemoryBlockDevice(65536, device.snapshotBlocks()));
  const full = await mount(fullCount, { txgIntervalMs: 0 });
  const readsAtMount = fullCount.blocksRead;
  const height = (await engineOf(full).tree.load(engineOf(full).tree.root)).level + 1;
  // Two superblock slots, the intent log's head block, then the root inode's path: the tree's
  // height, not the number of files.
  assert.equal(emptyCount.blocksRead, 4);
  assert.equal(readsAtMount, 3 + height, `mount read ${readsAtMount} blocks for a tree of height ${height}`);
  await full.unmount();
});

test("a lookup in a directory of 30,000 entries reads no more blocks than the tree is high", async () => {
  const device = new MemoryBlockDevice(1 << 18);
  await mkfs(device);
  const volume = await mount(device, { txgIntervalMs: 0 });
  const dir = await volume.mkdir(root, volume.rootRef, "big", {});
  for (let i = 0; i < 30_000; i++)
    await volume.create(root, dir.ref, `entry-${i}`, { kind: "guarded", attrs: {} });
  await volume.unmount();
  const counting = new CountingDevice(new MemoryBlockDevice(1 << 18, device.snapshotBlocks()));
  const cold = await mount(counting, { txgIntervalMs: 0, cacheBytes: 0 });
  const height = (await engineOf(cold).tree.load(engineOf(cold).tree.root)).level + 1;
  assert.ok(height >= 3, `a tree of this size has at least three levels (got ${height})`);
  const big = await cold.lookup(root, cold.rootRef, "big");
  for (const name of ["entry-0", "entry-17321", "entry-29999"]) {
    const before = counting.blocksRead;
    // The name item gives the child; the child's inode is a second descent.
    await cold.lookup(root, big.ref, name);
    const read = counting.blocksRead - before;
    assert.ok(read <= 2 * height, `lookup of ${name} read ${read} blocks for a tree of height ${height}`);
  }
  await cold.unmount();
});

test("a sparse file reaches 2^40 bytes and reads zeros in its holes", async () => {
  const device = new MemoryBlockDevice(8192);
  await mkfs(device);
  const volume = await mount(device, { txgIntervalMs: 0 });
  const file = await volume.create(root, volume.rootRef, "sparse", { kind: "guarded", attrs: {} });
  const tail = new Uint8Array([1, 2, 3, 4]);
  await volume.write(root, file.ref, 2 ** 40 - 4, tail, "file-sync");
  const attr = await volume.getattr(file.ref);
  assert.equal(attr.size, 2 ** 40);
  assert.equal(attr.usedBytes, 4096, "only the written block takes space");
  assert.deepEqual([...(await volume.read(root, file.ref, 2 ** 40 - 4, 10)).data], [1, 2, 3, 4]);
  const hole = await volume.read(root, file.ref, 2 ** 39, 8192);
  assert.equal(hole.data.length, 8192);
  assert.ok(hole.data.every((b) => b === 0));
  await volume.unmount();
});

test("the metadata cache stays within its bound", async () => {
  const device = new MemoryBlockDevice(65536);
  await mkfs(device);
  const volume = await mount(device, { txgIntervalMs: 0, cacheBytes: 64 * 4096 });
  const dir = await volume.mkdir(root, volume.rootRef, "d", {});
  for (let i = 0; i < 20_000; i++)
    await volume.create(root, dir.ref, `f${i}`, { kind: "guarded", attrs: {} });
  await volume.commit();
  for (let i = 0; i < 20_000; i += 7) await volume.lookup(root, dir.ref, `f${i}`);
  const cache = engineOf(volume).cache;
  assert.ok(cache.size <= cache.entriesMax, `cache holds ${cache.size} nodes, bound ${cache.entriesMax}`);
  assert.equal(cache.entriesMax, 32);
  await volume.unmount();
});
