/**
 * One model-based run: random ops on the reference model and on a real volume over `device`; every op
 * must agree, and the whole trees must match periodically, at the end and after a remount.
 */
import type { BlockDevice } from "../../src/block/index.ts";
import { mkfs, mount, type Volume } from "../../src/fs/index.ts";
import { ManualClock } from "../../src/util/clock.ts";
import { DualRunner } from "./dual-runner.ts";
import type { Op } from "./fs-ops.ts";
import { keepOpen } from "./keep-open.ts";
import { ModelVolume } from "./model-volume.ts";

const CHECK_EVERY_OPS = 20;

/** Runs `ops` on a fresh volume made on `device` (which must be blank or disposable). */
export async function runModelSequence(ops: readonly Op[], device: BlockDevice): Promise<void> {
  const clock = new ManualClock();
  let real: Volume;
  let remount: () => Promise<Volume>;
  if (process.env.FLOTILLA_MODEL_SELFTEST === "1") {
    const other = new ModelVolume();
    real = other;
    remount = async () => other;
  } else {
    // The volume closes its device on unmount: remounts go through a view that stays open.
    const view = keepOpen(device);
    await mkfs(view, { clock });
    const options = { txgIntervalMs: 0, clock };
    real = await mount(view, options);
    remount = () => mount(view, options);
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

export function envInt(name: string, fallback: number): number {
  const text = process.env[name];
  if (text === undefined || text === "") return fallback;
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw new Error(`${name} must be an integer, got "${text}"`);
  return value;
}
