import assert from "node:assert/strict";
import { test } from "node:test";
import { FaultyBlockDevice } from "../../../src/block/index.ts";
import { engineOf, mkfs, mount } from "../../../src/fs/index.ts";
import { ROOT } from "../../support/fs-ops.ts";

const CALLS = 32;

test("commits asked for together share one transaction group, and each covers its caller's change", async () => {
  const device = new FaultyBlockDevice(4096);
  await mkfs(device);
  const volume = await mount(device, { txgIntervalMs: 0 });
  const flushesBefore = device.flushCount;
  const txgBefore = engineOf(volume).txg;
  await Promise.all(
    Array.from({ length: CALLS }, async (_, i) => {
      await volume.create(ROOT, volume.rootRef, `f${i}`, { kind: "guarded", attrs: { mode: 0o644 } });
      await volume.commit();
      // Every caller's change is on stable storage once its commit resolves.
      const image = device.imageAfterPowerCut();
      const after = await mount(image, { txgIntervalMs: 0 });
      await after.lookup(ROOT, after.rootRef, `f${i}`);
      await after.unmount();
    }),
  );
  const groups = engineOf(volume).txg - txgBefore;
  assert.ok(
    groups >= 1 && groups <= 3,
    `${CALLS} commits asked for together took ${groups} transaction groups`,
  );
  assert.equal(device.flushCount - flushesBefore, groups * 2, "two flushes per transaction group");
  await volume.unmount();
});

test("a commit asked for while one is writing waits for the next group, which covers the later change", async () => {
  const device = new FaultyBlockDevice(4096);
  await mkfs(device);
  const volume = await mount(device, { txgIntervalMs: 0 });
  await volume.create(ROOT, volume.rootRef, "first", { kind: "guarded", attrs: { mode: 0o644 } });
  const first = volume.commit();
  // The first commit has the lock now; this change lands after it began, so it needs a group of its own.
  await Promise.resolve();
  const second = volume
    .create(ROOT, volume.rootRef, "second", { kind: "guarded", attrs: { mode: 0o644 } })
    .then(() => volume.commit());
  await Promise.all([first, second]);
  const image = device.imageAfterPowerCut();
  const after = await mount(image, { txgIntervalMs: 0 });
  await after.lookup(ROOT, after.rootRef, "first");
  await after.lookup(ROOT, after.rootRef, "second");
  await after.unmount();
  await volume.unmount();
});
