import assert from "node:assert/strict";
import { test } from "node:test";
import { FaultyBlockDevice } from "../../../src/block/index.ts";
import { engineOf, fsck, mkfs, mount } from "../../../src/fs/index.ts";
import { INTENT_LOG_BLOCKS } from "../../../src/fs/layout.ts";
import { ROOT } from "../../support/fs-ops.ts";

const USER = { uid: 1000, gid: 1000, gids: [1000] };

test("every kind of namespace change synced through the intent log survives a power cut, handles and times included", async () => {
  const device = new FaultyBlockDevice(8192);
  await mkfs(device);
  const volume = await mount(device, { txgIntervalMs: 0 });
  const txg = engineOf(volume).txg;
  const dir = await volume.mkdir(ROOT, volume.rootRef, "d", { mode: 0o777 });
  const file = await volume.create(USER, dir.ref, "f", { kind: "guarded", attrs: { mode: 0o640 } });
  const excl = await volume.create(USER, dir.ref, "x", {
    kind: "exclusive",
    verifier: new Uint8Array(8).fill(9),
  });
  await volume.symlink(USER, dir.ref, "s", "f", {});
  await volume.mknod(ROOT, dir.ref, "p", "fifo", { mode: 0o600 });
  await volume.link(USER, file.ref, dir.ref, "hard");
  await volume.rename(USER, dir.ref, "f", dir.ref, "g");
  await volume.setattr(USER, file.ref, { mode: 0o600, size: 5000 });
  await volume.create(USER, dir.ref, "gone", { kind: "unchecked", attrs: {} });
  await volume.remove(USER, dir.ref, "gone");
  await volume.mkdir(USER, dir.ref, "sub", {});
  await volume.rmdir(USER, dir.ref, "sub");
  const expected = await volume.getattr(file.ref);
  await volume.sync();
  assert.equal(engineOf(volume).txg, txg, "no transaction group was committed: the log made them durable");

  const after = await mount(device.imageAfterPowerCut(), { txgIntervalMs: 0 });
  const names = (await after.readdir(ROOT, dir.ref, 0, 0n, 100)).entries.map((e) => e.name).sort();
  assert.deepEqual(names, ["g", "hard", "p", "s", "x"]);
  assert.deepEqual(
    await after.getattr(file.ref),
    expected,
    "the same inode, generation, size, mode and times",
  );
  assert.equal((await after.lookup(USER, dir.ref, "x")).ref.ino, excl.ref.ino);
  assert.equal((await after.readlink(USER, (await after.lookup(USER, dir.ref, "s")).ref)).target, "f");
  assert.equal((await after.lookup(USER, dir.ref, "hard")).ref.ino, file.ref.ino);
  // A new file after the replay gets a fresh inode number, never one the log already used.
  const next = await after.create(USER, dir.ref, "new", { kind: "guarded", attrs: {} });
  assert.ok(next.ref.ino > excl.ref.ino);
  await after.unmount();
  await volume.unmount();
});

test("a commit ends the log's records: older records are not replayed again on top of it", async () => {
  const device = new FaultyBlockDevice(8192);
  await mkfs(device);
  const volume = await mount(device, { txgIntervalMs: 0 });
  await volume.create(ROOT, volume.rootRef, "f", { kind: "guarded", attrs: {} });
  await volume.sync();
  await volume.commit();
  await volume.remove(ROOT, volume.rootRef, "f");
  await volume.create(ROOT, volume.rootRef, "h", { kind: "guarded", attrs: {} });
  await volume.sync();
  const after = await mount(device.imageAfterPowerCut(), { txgIntervalMs: 0 });
  const names = (await after.readdir(ROOT, after.rootRef, 0, 0n, 10)).entries.map((e) => e.name);
  assert.deepEqual(names, ["h"]);
  await after.unmount();
  await volume.unmount();
});

test("more batches than the ring holds: a full log asks for a commit, and nothing synced is lost", async () => {
  const device = new FaultyBlockDevice(16384);
  await mkfs(device);
  const volume = await mount(device, { txgIntervalMs: 0 });
  const txg = engineOf(volume).txg;
  const count = INTENT_LOG_BLOCKS * 2 + 17;
  for (let i = 0; i < count; i++) {
    await volume.create(ROOT, volume.rootRef, `f${i}`, { kind: "guarded", attrs: {} });
    await volume.sync();
  }
  assert.ok(engineOf(volume).txg - txg >= 2, "the ring filled and commits emptied it");
  const after = await mount(device.imageAfterPowerCut(), { txgIntervalMs: 0 });
  for (const i of [0, INTENT_LOG_BLOCKS, count - 1]) await after.lookup(ROOT, after.rootRef, `f${i}`);
  const listed = (await after.readdir(ROOT, after.rootRef, 0, 0n, count + 10)).entries.length;
  assert.equal(listed, count);
  await after.unmount();
  await volume.unmount();
});

test("fsck finds the committed state of a volume whose log holds changes clean", async () => {
  const device = new FaultyBlockDevice(8192);
  await mkfs(device);
  const volume = await mount(device, { txgIntervalMs: 0 });
  await volume.create(ROOT, volume.rootRef, "f", { kind: "guarded", attrs: {} });
  await volume.sync();
  const image = device.imageAfterPowerCut();
  const report = await fsck(image, { repair: false });
  assert.deepEqual(report.problems, []);
  await volume.unmount();
});
