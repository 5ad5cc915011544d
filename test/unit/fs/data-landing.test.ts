import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { FaultyBlockDevice, FileBlockDevice } from "../../../src/block/index.ts";
import { FLUSH_AHEAD_BYTES } from "../../../src/fs/data-landing.ts";
import { engineOf, FsError, mkfs, mount } from "../../../src/fs/index.ts";
import { ROOT } from "../../support/fs-ops.ts";

const FILES = 200;

function bytesOf(i: number, length: number): Uint8Array {
  return Uint8Array.from({ length }, (_, k) => (i * 31 + k) & 0xff);
}

test("small writes are held back and sent together at the commit; reads see them before", async () => {
  const device = new FaultyBlockDevice(8192);
  await mkfs(device);
  const volume = await mount(device, { txgIntervalMs: 0 });
  const refs = [];
  for (let i = 0; i < FILES; i++) {
    const made = await volume.create(ROOT, volume.rootRef, `f${i}`, {
      kind: "guarded",
      attrs: { mode: 0o644 },
    });
    refs.push(made.ref);
  }
  await volume.commit();
  const writesBefore = device.writeCount;
  for (let i = 0; i < FILES; i++) await volume.write(ROOT, refs[i]!, 0, bytesOf(i, 100), "unstable");
  assert.equal(device.writeCount, writesBefore, "no data block reached the device before the commit");
  for (let i = 0; i < FILES; i++) {
    const read = await volume.read(ROOT, refs[i]!, 0, 4096);
    assert.deepEqual(read.data, bytesOf(i, 100), `file ${i} reads back before its data lands`);
  }
  await volume.commit();
  const image = device.imageAfterPowerCut();
  const after = await mount(image, { txgIntervalMs: 0 });
  for (let i = 0; i < FILES; i++) {
    const read = await after.read(ROOT, refs[i]!, 0, 4096);
    assert.deepEqual(read.data, bytesOf(i, 100), `file ${i} is on the device after the commit`);
  }
  await after.unmount();
  await volume.unmount();
});

test("a caller's buffer changed after a small write returns does not change the file", async () => {
  const device = new FaultyBlockDevice(4096);
  await mkfs(device);
  const volume = await mount(device, { txgIntervalMs: 0 });
  const made = await volume.create(ROOT, volume.rootRef, "f", { kind: "guarded", attrs: { mode: 0o644 } });
  const block = bytesOf(7, 4096);
  await volume.write(ROOT, made.ref, 0, block, "unstable");
  block.fill(0xee);
  await volume.commit();
  const read = await volume.read(ROOT, made.ref, 0, 4096);
  assert.deepEqual(read.data, bytesOf(7, 4096));
  await volume.unmount();
});

test("a large write is on the device when it returns", async () => {
  const device = new FaultyBlockDevice(4096);
  await mkfs(device);
  const volume = await mount(device, { txgIntervalMs: 0 });
  const made = await volume.create(ROOT, volume.rootRef, "big", { kind: "guarded", attrs: { mode: 0o644 } });
  const writesBefore = device.writeCount;
  await volume.write(ROOT, made.ref, 0, bytesOf(3, 1024 * 1024), "unstable");
  assert.equal(device.writeCount - writesBefore, 256, "all 256 blocks written before the reply");
  await volume.unmount();
});

test("a held-back write the device refuses fails the commit and the volume, not silently", async () => {
  const device = new FaultyBlockDevice(4096);
  await mkfs(device);
  const volume = await mount(device, { txgIntervalMs: 0 });
  const made = await volume.create(ROOT, volume.rootRef, "f", { kind: "guarded", attrs: { mode: 0o644 } });
  await volume.commit();
  await volume.write(ROOT, made.ref, 0, bytesOf(1, 100), "unstable");
  device.failWriteAfter(0);
  await assert.rejects(volume.commit(), (error: unknown) => error instanceof FsError && error.code === "IO");
  await assert.rejects(
    volume.getattr(made.ref),
    (error: unknown) => error instanceof FsError && /remount/.test(error.message),
  );
  assert.ok(engineOf(volume).failure !== null);
});

test("a write says when the caller's buffer is free again, and reusing it then changes nothing", async () => {
  const dir = await mkdtemp(join(tmpdir(), "flotilla-landing-"));
  try {
    const fileDevice = await FileBlockDevice.create(join(dir, "d.img"), 64 * 1024 * 1024);
    await mkfs(fileDevice);
    const onFile = await mount(fileDevice, { txgIntervalMs: 0 });
    const made = await onFile.create(ROOT, onFile.rootRef, "f", { kind: "guarded", attrs: { mode: 0o644 } });
    const buffer = bytesOf(3, 1024 * 1024);
    const large = await onFile.write(ROOT, made.ref, 0, buffer, "unstable");
    assert.equal(large.dataReleased, true, "a file device keeps nothing of a written buffer");
    buffer.fill(0x5a);
    await onFile.commit();
    assert.deepEqual((await onFile.read(ROOT, made.ref, 0, 1024 * 1024)).data, bytesOf(3, 1024 * 1024));
    await onFile.unmount();

    // A device that may keep the bytes (this one holds them as its volatile cache) releases nothing.
    const faulty = new FaultyBlockDevice(16384);
    await mkfs(faulty);
    const onFaulty = await mount(faulty, { txgIntervalMs: 0 });
    const other = await onFaulty.create(ROOT, onFaulty.rootRef, "f", {
      kind: "guarded",
      attrs: { mode: 0o644 },
    });
    const held = await onFaulty.write(ROOT, other.ref, 0, bytesOf(4, 1024 * 1024), "unstable");
    assert.equal(held.dataReleased, undefined);
    const copied = await onFaulty.write(ROOT, other.ref, 10, bytesOf(5, 100), "unstable");
    assert.equal(copied.dataReleased, true, "a small write is copied, so its buffer is free at once");
    await onFaulty.unmount();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("large writes flush the device ahead of the commit, and the commit still makes them durable", async () => {
  const device = new FaultyBlockDevice(16384);
  await mkfs(device);
  const volume = await mount(device, { txgIntervalMs: 0 });
  const made = await volume.create(ROOT, volume.rootRef, "f", { kind: "guarded", attrs: { mode: 0o644 } });
  await volume.commit();
  const flushesBefore = device.flushCount;
  const MIB = 1024 * 1024;
  // Two flush-aheads' worth, in 1 MiB writes, and no commit.
  for (let i = 0; i < (2 * FLUSH_AHEAD_BYTES) / MIB; i++) {
    await volume.write(ROOT, made.ref, i * MIB, bytesOf(i, MIB), "unstable");
  }
  await new Promise((resolve) => setImmediate(resolve));
  assert.ok(device.flushCount >= flushesBefore + 2, "the device was flushed while the writes went on");
  await volume.commit();
  const after = await mount(device.imageAfterPowerCut(), { txgIntervalMs: 0 });
  for (let i = 0; i < (2 * FLUSH_AHEAD_BYTES) / MIB; i++) {
    assert.deepEqual((await after.read(ROOT, made.ref, i * MIB, MIB)).data, bytesOf(i, MIB), `MiB ${i}`);
  }
  await after.unmount();
  await volume.unmount();
});
