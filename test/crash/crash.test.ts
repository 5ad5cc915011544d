/**
 * Crash tests: a seeded op sequence runs on a volume over a FaultyBlockDevice and on the reference
 * model; then power fails (a prefix of the device writes, a cut that keeps only flushed writes, or a
 * cut that keeps a random subset of the unflushed ones). The image must pass fsck, and its tree must
 * equal the model after some prefix of the ops: never less than what was made durable, never a mix.
 * Then the recovered volume must keep working.
 *
 * FLOTILLA_CRASH_SEEDS sets how many seeds run (default 300); FLOTILLA_CRASH_SEED runs just one.
 * Every failure names its seed.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { type BlockDevice, FaultyBlockDevice, MemoryBlockDevice } from "../../src/block/index.ts";
import { type FsckReport, FsError, fsck, mkfs, mount, type Volume } from "../../src/fs/index.ts";
import { ManualClock } from "../../src/util/clock.ts";
import { SeededRandom } from "../../src/util/random.ts";
import { DualRunner } from "../support/dual-runner.ts";
import type { Op } from "../support/fs-ops.ts";
import { keepOpen } from "../support/keep-open.ts";
import { ModelVolume } from "../support/model-volume.ts";
import { type OpProfile, opArbitrary } from "../support/op-arbitraries.ts";
import { type DumpNode, dumpTree } from "../support/tree-dump.ts";

const DEVICE_BLOCKS = 4096; // 16 MiB
const CRASH_PROFILE: OpProfile = {
  offsetMax: 200_000,
  lengthMax: 32 * 1024,
  farOffsets: false,
  remount: true,
  check: false,
  populateMax: 120,
};
const MOUNT_OPTIONS = { txgIntervalMs: 0 } as const;
const TXG_INTERVAL_MS = 400;

function envInt(name: string): number | undefined {
  const text = process.env[name];
  if (text === undefined || text === "") return undefined;
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw new Error(`${name} must be an integer, got "${text}"`);
  return value;
}

function seedsToRun(defaultCount: number, firstSeed: number): number[] {
  const one = envInt("FLOTILLA_CRASH_SEED");
  if (one !== undefined) return [one];
  const count = envInt("FLOTILLA_CRASH_SEEDS") ?? defaultCount;
  return Array.from({ length: count }, (_, i) => firstSeed + i);
}

/** The same seed always gives the same ops. */
function opsFor(seed: number, minLength: number, maxLength: number): Op[] {
  const arbitrary = fc.noBias(fc.array(opArbitrary(CRASH_PROFILE), { minLength, maxLength }));
  const [ops] = fc.sample(arbitrary, { seed, numRuns: 1 });
  assert.ok(ops !== undefined);
  return ops;
}

/** Runs one seed; a failure names the seed and how to run it alone. */
async function withSeed<T>(seed: number, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const rerun = `rerun with FLOTILLA_CRASH_SEED=${seed}`;
    throw new Error(
      message.includes(`seed ${seed}`) ? `${message}\n(${rerun})` : `seed ${seed}: ${message}\n(${rerun})`,
      {
        cause: error,
      },
    );
  }
}

let emptyVolume: Map<number, Uint8Array> | undefined;

/** A fresh device holding an empty volume: mkfs runs once; its writes are not part of any history. */
async function freshDevice(): Promise<FaultyBlockDevice> {
  if (emptyVolume === undefined) {
    const device = new MemoryBlockDevice(DEVICE_BLOCKS);
    await mkfs(device, { clock: new ManualClock() });
    emptyVolume = device.snapshotBlocks();
  }
  return new FaultyBlockDevice(DEVICE_BLOCKS, emptyVolume);
}

function assertClean(report: FsckReport, context: string): void {
  const problems = report.problems.map((p) => `${p.kind}: ${p.message}`);
  assert.deepEqual(problems, [], `${context}: fsck found problems`);
}

/** Everything one run remembers: the model after each op and where the device was. */
interface History {
  /** `models[p]`: the model after the first p ops. */
  readonly models: ModelVolume[];
  /** `startWrites[j]`: the device's write count when op j began. */
  readonly startWrites: number[];
  /** Prefixes made durable, with the write count when that became true. */
  readonly durable: Array<{ readonly prefix: number; readonly writeCount: number }>;
}

async function runAndRecord(
  runner: DualRunner,
  device: FaultyBlockDevice,
  ops: readonly Op[],
  beforeOp: () => void,
): Promise<History> {
  const history: History = { models: [runner.model.clone()], startWrites: [], durable: [] };
  for (let j = 0; j < ops.length; j++) {
    beforeOp();
    history.startWrites.push(device.writeCount);
    const outcome = await runner.run(ops[j]!, j);
    history.models.push(runner.model.clone());
    if (outcome.durable) history.durable.push({ prefix: j + 1, writeCount: device.writeCount });
  }
  return history;
}

type CrashKind = "write-prefix" | "power-cut" | "random-unflushed";

interface Crash {
  readonly kind: CrashKind;
  readonly image: MemoryBlockDevice;
  /** The recovered tree must equal the model after p ops for some p in [lowest, highest]. */
  readonly lowest: number;
  readonly highest: number;
  readonly detail: string;
}

function crash(device: FaultyBlockDevice, history: History, random: SeededRandom): Crash {
  const opCount = history.startWrites.length;
  const lastDurable = history.durable.at(-1)?.prefix ?? 0;
  const kind = (["write-prefix", "power-cut", "random-unflushed"] as const)[random.int(3)]!;
  if (kind === "power-cut") {
    return { kind, image: device.imageAfterPowerCut(), lowest: lastDurable, highest: opCount, detail: "" };
  }
  if (kind === "random-unflushed") {
    const image = device.imageWithRandomUnflushedSubset(random);
    return {
      kind,
      image,
      lowest: lastDurable,
      highest: opCount,
      detail: `${device.unflushedWriteCount} unflushed`,
    };
  }
  const k = random.int(device.writeCount + 1);
  let lowest = 0;
  for (const point of history.durable) if (point.writeCount <= k) lowest = point.prefix;
  // Op j can show only in writes issued after it began: those with index >= startWrites[j].
  let highest = 0;
  while (highest < opCount && history.startWrites[highest]! < k) highest++;
  // A durable op that wrote nothing (a commit with nothing to commit) may start exactly at write k.
  highest = Math.max(highest, lowest);
  return {
    kind,
    image: device.imageAfterWrites(k),
    lowest,
    highest,
    detail: `first ${k} of ${device.writeCount} writes`,
  };
}

/** The prefix length whose model equals `recovered`, searching from the newest allowed one. */
async function matchingPrefix(
  recovered: DumpNode,
  history: History,
  crashed: Crash,
): Promise<number | undefined> {
  const digestCache = new Map<string, string>();
  const wanted = JSON.stringify(recovered);
  for (let p = crashed.highest; p >= crashed.lowest; p--) {
    const model = history.models[p]!;
    const dump = await dumpTree(model, { contentKey: (ref) => model.contentKey(ref), digestCache });
    if (JSON.stringify(dump) === wanted) return p;
  }
  return undefined;
}

/** Returns the prefix the recovered volume matched. */
async function checkRecovery(
  seed: number,
  history: History,
  crashed: Crash,
  random: SeededRandom,
): Promise<number> {
  const context = `seed ${seed} (${crashed.kind}${crashed.detail === "" ? "" : `, ${crashed.detail}`})`;
  const image = keepOpen(crashed.image);
  assertClean(await fsck(image, { repair: false }), `${context}: after the crash`);
  const clock = new ManualClock(1_800_000_000);
  const recovered = await mount(image, { ...MOUNT_OPTIONS, clock });
  const dump = await dumpTree(recovered);
  const prefix = await matchingPrefix(dump, history, crashed);
  if (prefix === undefined) {
    const newest = history.models[crashed.highest]!;
    const expected = await dumpTree(newest);
    assert.deepEqual(
      dump,
      expected,
      `${context}: the recovered tree is the model after no prefix of ops ` +
        `${crashed.lowest}..${crashed.highest} (diff shown against ${crashed.highest})`,
    );
  }
  await keepWorking(seed, image, recovered, history.models[prefix!]!.clone(), clock, random, context);
  return prefix!;
}

/** After recovery: more ops, a commit, a remount; the volume still matches the model and fsck is clean. */
async function keepWorking(
  seed: number,
  image: BlockDevice,
  recovered: Volume,
  model: ModelVolume,
  clock: ManualClock,
  random: SeededRandom,
  context: string,
): Promise<void> {
  const runner = new DualRunner(model, recovered, () => mount(image, { ...MOUNT_OPTIONS, clock }));
  try {
    await runner.learnTrees();
    const more = opsFor(seed ^ 0x5eed, 5, 12);
    for (let i = 0; i < more.length; i++) {
      clock.advance(random.int(3));
      await runner.run(more[i]!, 1000 + i);
    }
    await runner.real.commit();
    await runner.remount();
  } catch (error) {
    throw new Error(`${context}: after recovery: ${(error as Error).message}`, { cause: error });
  } finally {
    await runner.real.unmount();
  }
  assertClean(await fsck(image, { repair: false }), `${context}: after recovery and more work`);
}

interface CrashStats {
  readonly kind: CrashKind;
  /** The transaction-group timer ran. */
  readonly timed: boolean;
  /** The recovered state was older than the newest allowed one: non-durable ops were really lost. */
  readonly lostSome: boolean;
  readonly writeCount: number;
}

async function crashSeed(seed: number): Promise<CrashStats> {
  const random = new SeededRandom(seed);
  const device = await freshDevice();
  const clock = new ManualClock();
  // Half the seeds also run the transaction-group timer: background commits start between ops
  // (the manual clock fires them) and run alongside the next op.
  const timed = random.int(2) === 1;
  const options = { txgIntervalMs: timed ? TXG_INTERVAL_MS : 0, clock };
  const real = await mount(keepOpen(device), options);
  const root = await real.getattr(real.rootRef);
  const model = new ModelVolume({ rootMode: root.mode, rootUid: root.uid, rootGid: root.gid });
  const runner = new DualRunner(model, real, () => mount(keepOpen(device), options));
  const tick = () => clock.advance(timed ? random.int(TXG_INTERVAL_MS) : 0);
  let history: History;
  try {
    history = await runAndRecord(runner, device, opsFor(seed, 30, 90), tick);
  } catch (error) {
    throw new Error(`seed ${seed}: before the crash: ${(error as Error).message}`, { cause: error });
  }
  const crashed = crash(device, history, random);
  device.powerOff();
  const prefix = await checkRecovery(seed, history, crashed, random);
  return { kind: crashed.kind, timed, lostSome: prefix < crashed.highest, writeCount: device.writeCount };
}

test("after a crash at any point, the volume mounts clean at a prefix no older than the last durable point", async (t) => {
  const seeds = seedsToRun(300, 1);
  const kinds = new Map<CrashKind, number>();
  let lost = 0;
  let writes = 0;
  let timed = 0;
  for (const seed of seeds) {
    const stats = await withSeed(seed, () => crashSeed(seed));
    kinds.set(stats.kind, (kinds.get(stats.kind) ?? 0) + 1);
    if (stats.lostSome) lost++;
    if (stats.timed) timed++;
    writes += stats.writeCount;
  }
  t.diagnostic(
    `${seeds.length} seeds (${timed} with the txg timer): ${[...kinds].map(([k, n]) => `${k} ${n}`).join(", ")}; ` +
      `${lost} recovered an older state than the newest allowed; ${Math.round(writes / seeds.length)} block writes per seed`,
  );
  if (seeds.length >= 30) {
    for (const kind of ["write-prefix", "power-cut", "random-unflushed"] as const) {
      assert.ok((kinds.get(kind) ?? 0) > 0, `no seed crashed by ${kind}`);
    }
  }
});

/**
 * Injected write or flush failures: the op or commit that meets one fails with FsError IO, never with a
 * success it did not earn; after a power cut the volume is clean and holds at least what was durable.
 */
async function faultSeed(seed: number): Promise<boolean> {
  const random = new SeededRandom(seed);
  const device = await freshDevice();
  const clock = new ManualClock();
  const real = await mount(keepOpen(device), { ...MOUNT_OPTIONS, clock });
  const root = await real.getattr(real.rootRef);
  const model = new ModelVolume({ rootMode: root.mode, rootUid: root.uid, rootGid: root.gid });
  const runner = new DualRunner(model, real, () => mount(keepOpen(device), { ...MOUNT_OPTIONS, clock }));
  const ops: Op[] = [...opsFor(seed + 1_000_000, 15, 40), { kind: "commit" }];
  const armAt = random.int(ops.length);
  runner.tolerateIo = true;
  const history: History = { models: [model.clone()], startWrites: [], durable: [] };
  let failedAt: number | undefined;
  for (let j = 0; j < ops.length && failedAt === undefined; j++) {
    if (j === armAt) {
      if (random.int(2) === 0) device.failWriteAfter(random.int(8));
      else device.failFlushAfter(random.int(3));
    }
    history.startWrites.push(device.writeCount);
    try {
      const outcome = await runner.run(ops[j]!, j);
      if (outcome.durable) history.durable.push({ prefix: j + 1, writeCount: device.writeCount });
    } catch (error) {
      // The model has applied op j; the volume may or may not have: both prefixes are allowed below.
      const isIo = error instanceof FsError && error.code === "IO";
      if (!isIo) throw new Error(`seed ${seed}: op #${j}: ${(error as Error).message}`, { cause: error });
      failedAt = j;
    }
    history.models.push(runner.model.clone());
  }
  const opCount = history.startWrites.length;
  const lastDurable = history.durable.at(-1)?.prefix ?? 0;
  const crashed: Crash = {
    kind: "power-cut",
    image: device.imageAfterPowerCut(),
    lowest: lastDurable,
    highest: opCount,
    detail: failedAt === undefined ? "no injected failure met" : `injected failure at op #${failedAt}`,
  };
  device.powerOff();
  await checkRecovery(seed, history, crashed, random);
  return failedAt !== undefined;
}

test("injected write and flush failures surface as FsError IO and never lose durable state", async (t) => {
  const seeds = seedsToRun(60, 100_001);
  let failures = 0;
  for (const seed of seeds) if (await withSeed(seed, () => faultSeed(seed))) failures++;
  t.diagnostic(`${failures} of ${seeds.length} seeds met their injected failure`);
  if (seeds.length >= 30) assert.ok(failures >= seeds.length / 4, `only ${failures} seeds met their failure`);
});
