/**
 * Model-based property test of the volume file system: random op sequences run on the reference model
 * (test/support/model-volume.ts) and on a real volume over a memory device; every op must give the same
 * error code or the same observable result, and the whole trees must match periodically and at the end.
 *
 * FLOTILLA_PROPERTY_RUNS sets the number of sequences; FLOTILLA_PROPERTY_SEED (and
 * FLOTILLA_PROPERTY_PATH) replay a failure that fast-check reported.
 * FLOTILLA_MODEL_SELFTEST=1 runs the model against itself (to test the harness).
 */
import { test } from "node:test";
import fc from "fast-check";
import { MemoryBlockDevice } from "../../src/block/index.ts";
import { mkfs, mount, type Volume } from "../../src/fs/index.ts";
import { ManualClock } from "../../src/util/clock.ts";
import { DualRunner } from "../support/dual-runner.ts";
import type { Op } from "../support/fs-ops.ts";
import { keepOpen } from "../support/keep-open.ts";
import { ModelVolume } from "../support/model-volume.ts";
import { opArbitrary, PROPERTY_PROFILE } from "../support/op-arbitraries.ts";

const DEVICE_BLOCKS = 16_384; // 64 MiB
const CHECK_EVERY_OPS = 20;

function envInt(name: string, fallback: number): number {
  const text = process.env[name];
  if (text === undefined || text === "") return fallback;
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw new Error(`${name} must be an integer, got "${text}"`);
  return value;
}

async function runSequence(ops: readonly Op[]): Promise<void> {
  const clock = new ManualClock();
  let real: Volume;
  let remount: () => Promise<Volume>;
  if (process.env.FLOTILLA_MODEL_SELFTEST === "1") {
    const other = new ModelVolume();
    real = other;
    remount = async () => other;
  } else {
    // The volume closes its device on unmount: remounts go through a view that stays open.
    const device = keepOpen(new MemoryBlockDevice(DEVICE_BLOCKS));
    await mkfs(device, { clock });
    const options = { txgIntervalMs: 0, clock };
    real = await mount(device, options);
    remount = () => mount(device, options);
  }
  const root = await real.getattr(real.rootRef);
  const model = new ModelVolume({ rootMode: root.mode, rootUid: root.uid, rootGid: root.gid });
  const runner = new DualRunner(model, real, remount);
  try {
    for (let i = 0; i < ops.length; i++) {
      // Time moves by 0, 1 or 2 ms between ops: some changes share a timestamp.
      clock.advance(i % 3);
      await runner.run(ops[i]!, i);
      if (i % CHECK_EVERY_OPS === CHECK_EVERY_OPS - 1) await runner.compareTrees();
    }
    await runner.compareTrees();
    await runner.remount();
  } finally {
    await runner.real.unmount().catch(() => {});
  }
}

test("random operation sequences: the volume behaves as the reference model", async () => {
  const seedText = process.env.FLOTILLA_PROPERTY_SEED;
  const path = process.env.FLOTILLA_PROPERTY_PATH;
  await fc.assert(
    fc.asyncProperty(fc.array(opArbitrary(PROPERTY_PROFILE), { minLength: 30, maxLength: 80 }), runSequence),
    {
      numRuns: envInt("FLOTILLA_PROPERTY_RUNS", 150),
      verbose: 1,
      ...(seedText === undefined ? {} : { seed: Number(seedText) }),
      ...(path === undefined ? {} : { path }),
    },
  );
});
