/**
 * Volume file-system benchmark: Flotilla on a sparse volume file beside the host file system, same run.
 *
 *   npm run bench:fs               full run (100,000 files, 1 GiB file, 1,000,000-file mount)
 *   npm run bench:fs -- --quick    scaled down for a quick look
 *
 * Flags: --files N, --file-mib N, --mount-files N (0 skips the mount test), --mounts N, --dir PATH.
 * Results go to stdout; progress of long steps to stderr. Temp files are removed at the end.
 */
import { mkdir, mkdtemp, open, rm, stat, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { BLOCK_BYTES, FileBlockDevice } from "../src/block/index.ts";
import { type Credentials, mkfs, mount, type NodeRef, type Volume } from "../src/fs/index.ts";

const ROOT: Credentials = { uid: 0, gid: 0, gids: [] };
const VOLUME_BYTES = 4 * 1024 ** 3;
const FILES_PER_DIR = 10_000;
const SMALL_FILE_BYTES = 100;
const MIB = 1024 * 1024;

interface Settings {
  readonly files: number;
  readonly fileMib: number;
  readonly mountFiles: number;
  readonly mounts: number;
  readonly dir: string;
}

function settings(): Settings {
  const { values } = parseArgs({
    options: {
      quick: { type: "boolean", default: false },
      files: { type: "string" },
      "file-mib": { type: "string" },
      "mount-files": { type: "string" },
      mounts: { type: "string" },
      dir: { type: "string" },
    },
  });
  const quick = values.quick;
  const int = (text: string | undefined, fallback: number, name: string): number => {
    if (text === undefined) return fallback;
    const value = Number(text);
    if (!Number.isSafeInteger(value) || value < 0)
      throw new RangeError(`--${name} must be a count, got ${text}`);
    return value;
  };
  return {
    files: int(values.files, quick ? 10_000 : 100_000, "files"),
    fileMib: int(values["file-mib"], quick ? 128 : 1024, "file-mib"),
    mountFiles: int(values["mount-files"], quick ? 50_000 : 1_000_000, "mount-files"),
    mounts: Math.max(1, int(values.mounts, 5, "mounts")),
    dir: values.dir ?? tmpdir(),
  };
}

function progress(text: string): void {
  process.stderr.write(`\r\x1b[K${text}`);
}

function progressDone(): void {
  process.stderr.write("\r\x1b[K");
}

function seconds(startMs: number): number {
  return (performance.now() - startMs) / 1000;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function report(label: string, value: number, unit: string, host?: number): void {
  const ratio =
    host === undefined
      ? ""
      : `   host ${host.toFixed(1)} ${unit}   Flotilla/host ${(value / host).toFixed(2)}`;
  process.stdout.write(`${label.padEnd(34)} ${value.toFixed(1).padStart(10)} ${unit}${ratio}\n`);
}

async function newVolume(dir: string, name: string): Promise<{ volume: Volume; path: string }> {
  const path = join(dir, name);
  const device = await FileBlockDevice.create(path, VOLUME_BYTES);
  await mkfs(device);
  return { volume: await mount(device), path };
}

// ---- (a) many small files ----

interface FileRates {
  readonly createPerSec: number;
  readonly statPerSec: number;
  readonly removePerSec: number;
  readonly filesPerSec: number;
}

async function flotillaSmallFiles(volume: Volume, count: number): Promise<FileRates> {
  const payload = new Uint8Array(SMALL_FILE_BYTES).fill(0x61);
  const dirs: NodeRef[] = [];
  for (let d = 0; d * FILES_PER_DIR < count; d++) {
    dirs.push((await volume.mkdir(ROOT, volume.rootRef, `d${d}`, {})).ref);
  }
  const refs: NodeRef[] = [];
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    const dir = dirs[Math.floor(i / FILES_PER_DIR)]!;
    const made = await volume.create(ROOT, dir, `f${i}`, { kind: "guarded", attrs: {} });
    await volume.write(ROOT, made.ref, 0, payload, "unstable");
    refs.push(made.ref);
    if (i % 5000 === 0) progress(`flotilla: created ${i}/${count}`);
  }
  const created = performance.now();
  for (let i = 0; i < count; i++) await volume.getattr(refs[i]!);
  const statted = performance.now();
  for (let i = 0; i < count; i++) {
    await volume.remove(ROOT, dirs[Math.floor(i / FILES_PER_DIR)]!, `f${i}`);
    if (i % 5000 === 0) progress(`flotilla: removed ${i}/${count}`);
  }
  await volume.commit();
  const end = performance.now();
  progressDone();
  return ratesOf(count, start, created, statted, end);
}

/** Per-second rates of each phase, from the phase boundaries in milliseconds. */
function ratesOf(count: number, start: number, created: number, statted: number, end: number): FileRates {
  const perSec = (from: number, to: number): number => count / ((to - from) / 1000);
  return {
    createPerSec: perSec(start, created),
    statPerSec: perSec(created, statted),
    removePerSec: perSec(statted, end),
    filesPerSec: perSec(start, end),
  };
}

async function hostSmallFiles(dir: string, count: number): Promise<FileRates> {
  const payload = new Uint8Array(SMALL_FILE_BYTES).fill(0x61);
  for (let d = 0; d * FILES_PER_DIR < count; d++) await mkdir(join(dir, `d${d}`));
  const path = (i: number) => join(dir, `d${Math.floor(i / FILES_PER_DIR)}`, `f${i}`);
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    await writeFile(path(i), payload, { flag: "wx" });
    if (i % 5000 === 0) progress(`host: created ${i}/${count}`);
  }
  const created = performance.now();
  for (let i = 0; i < count; i++) await stat(path(i));
  const statted = performance.now();
  for (let i = 0; i < count; i++) await unlink(path(i));
  const end = performance.now();
  progressDone();
  return ratesOf(count, start, created, statted, end);
}

// ---- (b) one big file ----

interface Throughput {
  readonly writeMBps: number;
  readonly readMBps: number;
}

function chunkFor(i: number): Uint8Array {
  const chunk = new Uint8Array(MIB);
  new DataView(chunk.buffer).setUint32(0, i);
  chunk.fill(i & 0xff, 4);
  return chunk;
}

async function flotillaBigFile(volume: Volume, mib: number): Promise<Throughput> {
  const { ref } = await volume.create(ROOT, volume.rootRef, "big", { kind: "guarded", attrs: {} });
  const chunks = [chunkFor(1), chunkFor(2)];
  const start = performance.now();
  for (let i = 0; i < mib; i++) {
    await volume.write(ROOT, ref, i * MIB, chunks[i % 2]!, "unstable");
    if (i % 64 === 0) progress(`flotilla: wrote ${i}/${mib} MiB`);
  }
  await volume.commit();
  const written = performance.now();
  for (let i = 0; i < mib; i++) {
    const { data } = await volume.read(ROOT, ref, i * MIB, MIB);
    if (data.length !== MIB) throw new Error(`short read at ${i} MiB: ${data.length} bytes`);
    if (i % 64 === 0) progress(`flotilla: read ${i}/${mib} MiB`);
  }
  const end = performance.now();
  progressDone();
  const mb = (mib * MIB) / 1e6;
  return { writeMBps: mb / ((written - start) / 1000), readMBps: mb / ((end - written) / 1000) };
}

async function hostBigFile(dir: string, mib: number): Promise<Throughput> {
  const path = join(dir, "big");
  const chunks = [chunkFor(1), chunkFor(2)];
  const handle = await open(path, "wx");
  const start = performance.now();
  try {
    for (let i = 0; i < mib; i++) {
      await handle.write(chunks[i % 2]!, 0, MIB, i * MIB);
      if (i % 64 === 0) progress(`host: wrote ${i}/${mib} MiB`);
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
  const written = performance.now();
  const reader = await open(path, "r");
  const buffer = new Uint8Array(MIB);
  try {
    for (let i = 0; i < mib; i++) {
      const { bytesRead } = await reader.read(buffer, 0, MIB, i * MIB);
      if (bytesRead !== MIB) throw new Error(`short host read at ${i} MiB`);
    }
  } finally {
    await reader.close();
  }
  const end = performance.now();
  progressDone();
  await unlink(path);
  const mb = (mib * MIB) / 1e6;
  return { writeMBps: mb / ((written - start) / 1000), readMBps: mb / ((end - written) / 1000) };
}

// ---- (c) mount time of a volume holding many files ----

async function mountTimes(dir: string, files: number, mounts: number): Promise<number[]> {
  const { volume, path } = await newVolume(dir, "many.img");
  const start = performance.now();
  const perDir = 1000;
  let parent: NodeRef = volume.rootRef;
  for (let i = 0; i < files; i++) {
    if (i % perDir === 0) parent = (await volume.mkdir(ROOT, volume.rootRef, `d${i / perDir}`, {})).ref;
    await volume.create(ROOT, parent, `f${i}`, { kind: "guarded", attrs: {} });
    if (i % 50_000 === 49_999) await volume.commit();
    if (i % 10_000 === 0) {
      const rate = i / Math.max(seconds(start), 0.001);
      progress(`building the ${files}-file volume: ${i} files (${rate.toFixed(0)}/s)`);
    }
  }
  await volume.unmount();
  progressDone();
  process.stderr.write(`built a volume of ${files} files in ${seconds(start).toFixed(1)} s\n`);
  const times: number[] = [];
  for (let m = 0; m < mounts; m++) {
    const device = await FileBlockDevice.open(path);
    const begin = performance.now();
    const mounted = await mount(device);
    const attr = await mounted.getattr(mounted.rootRef);
    times.push(performance.now() - begin);
    if (attr.nlink < 2) throw new Error("the mounted root looks wrong");
    await mounted.unmount();
  }
  return times;
}

async function main(): Promise<void> {
  const s = settings();
  const work = await mkdtemp(join(s.dir, "flotilla-bench-"));
  const cleanup = () => rm(work, { recursive: true, force: true });
  process.once("SIGINT", () => {
    void cleanup().finally(() => process.exit(130));
  });
  try {
    process.stdout.write(
      `Flotilla volume fs benchmark: ${s.files} small files, ${s.fileMib} MiB file, ` +
        `${s.mountFiles}-file mount; ${BLOCK_BYTES}-byte blocks; in ${work}\n\n`,
    );
    const hostDir = join(work, "host");
    await mkdir(hostDir);

    const { volume } = await newVolume(work, "bench.img");
    const flotillaFiles = await flotillaSmallFiles(volume, s.files);
    const hostFiles = await hostSmallFiles(hostDir, s.files);
    process.stdout.write(`(a) ${s.files} small files (${SMALL_FILE_BYTES} bytes each)\n`);
    report("  create + write", flotillaFiles.createPerSec, "files/s", hostFiles.createPerSec);
    report("  stat", flotillaFiles.statPerSec, "files/s", hostFiles.statPerSec);
    report("  remove (+ commit)", flotillaFiles.removePerSec, "files/s", hostFiles.removePerSec);
    report("  whole cycle", flotillaFiles.filesPerSec, "files/s", hostFiles.filesPerSec);

    const flotillaBig = await flotillaBigFile(volume, s.fileMib);
    await volume.unmount();
    const hostBig = await hostBigFile(hostDir, s.fileMib);
    process.stdout.write(`(b) ${s.fileMib} MiB file in 1 MiB calls (host read is likely page cache)\n`);
    report("  sequential write (+ commit/fsync)", flotillaBig.writeMBps, "MB/s", hostBig.writeMBps);
    report("  sequential read", flotillaBig.readMBps, "MB/s", hostBig.readMBps);

    if (s.mountFiles > 0) {
      const times = await mountTimes(work, s.mountFiles, s.mounts);
      process.stdout.write(`(c) mount of a volume holding ${s.mountFiles} files (${s.mounts} mounts)\n`);
      report("  mount time, median", median(times), "ms");
      process.stdout.write(`  all mounts: ${times.map((t) => t.toFixed(1)).join(", ")} ms\n`);
    }
  } finally {
    await cleanup();
  }
}

await main();
