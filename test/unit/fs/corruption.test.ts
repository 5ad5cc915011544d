/**
 * Damaged blocks: a flipped bit in a tree block or a data block is noticed on read (FsError IO naming
 * the block, never wrong data), reported by fsck with the block's index, and by `flotilla fsck` with
 * exit status 4.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  BLOCK_BYTES,
  type BlockDevice,
  FaultyBlockDevice,
  FileBlockDevice,
  MemoryBlockDevice,
} from "../../../src/block/index.ts";
import {
  FsError,
  fsck,
  listUsedBlocks,
  mkfs,
  mount,
  type NodeRef,
  type Volume,
} from "../../../src/fs/index.ts";
import { SeededRandom } from "../../../src/util/random.ts";
import { patternBytes, ROOT } from "../../support/fs-ops.ts";
import { keepOpen } from "../../support/keep-open.ts";
import { listDirectory } from "../../support/tree-dump.ts";

const DEVICE_BLOCKS = 4096; // 16 MiB
const BLOCK_BITS = BLOCK_BYTES * 8;
/** How many blocks of each kind get a flipped bit (spread over all the volume's blocks). */
const SAMPLES_MAX = 24;

/** What the test volume holds: path → file bytes or symlink target (directories have none). */
type Expected = Map<string, Uint8Array | string | null>;

/** Fills a volume: enough files and directories for a tree several blocks big, some with data. */
async function populate(volume: Volume): Promise<{ expected: Expected; refs: Map<number, string> }> {
  const expected: Expected = new Map();
  const refs = new Map<number, string>();
  for (let d = 0; d < 4; d++) {
    const dir = await volume.mkdir(ROOT, volume.rootRef, `dir${d}`, {});
    expected.set(`/dir${d}`, null);
    for (let f = 0; f < 60; f++) {
      const name = `file-with-a-longish-name-${f}`;
      const made = await volume.create(ROOT, dir.ref, name, { kind: "guarded", attrs: {} });
      const data = patternBytes(d * 1000 + f, f % 7 === 0 ? 3 * BLOCK_BYTES + 17 : (f * 37) % 600);
      if (data.length > 0) await volume.write(ROOT, made.ref, 0, data, "unstable");
      expected.set(`/dir${d}/${name}`, data);
      refs.set(made.ref.ino, `/dir${d}/${name}`);
    }
    await volume.symlink(ROOT, dir.ref, "link", `target-${d}`, {});
    expected.set(`/dir${d}/link`, `target-${d}`);
  }
  return { expected, refs };
}

/** Reads everything; returns the first FsError met (after checking all data read so far is right). */
async function walkAll(volume: Volume, expected: Expected): Promise<FsError | undefined> {
  try {
    await walkDir(volume, volume.rootRef, "", expected);
    return undefined;
  } catch (error) {
    if (error instanceof FsError) return error;
    throw error;
  }
}

async function walkDir(volume: Volume, dir: NodeRef, path: string, expected: Expected): Promise<void> {
  for (const entry of await listDirectory(volume, dir)) {
    const childPath = `${path}/${entry.name}`;
    assert.ok(expected.has(childPath), `the walk found ${childPath}, which was never made`);
    const { ref, attr } = await volume.lookup(ROOT, dir, entry.name);
    const want = expected.get(childPath);
    if (attr.type === "dir") await walkDir(volume, ref, childPath, expected);
    else if (attr.type === "lnk") assert.equal((await volume.readlink(ROOT, ref)).target, want, childPath);
    else await checkFile(volume, ref, childPath, want as Uint8Array);
  }
}

async function checkFile(volume: Volume, ref: NodeRef, path: string, want: Uint8Array): Promise<void> {
  const { data } = await volume.read(ROOT, ref, 0, want.length + 1);
  assert.ok(Buffer.from(data).equals(Buffer.from(want)), `${path}: the bytes read are not the bytes written`);
}

function assertNamesBlock(error: FsError | undefined, blockIndex: number, what: string): void {
  assert.ok(error !== undefined, `${what}: the damaged block ${blockIndex} was never noticed`);
  assert.equal(error.code, "IO", `${what}: expected IO, got ${error.code} (${error.message})`);
  assert.equal(error.blockIndex, blockIndex, `${what}: the IO error names block ${error.blockIndex}`);
}

function evenlySpread<T>(items: readonly T[], count: number): T[] {
  if (items.length <= count) return [...items];
  return Array.from({ length: count }, (_, i) => items[Math.floor((i * items.length) / count)]!);
}

describe("flipped bits on a memory device", () => {
  let image: Map<number, Uint8Array>;
  let expected: Expected;
  let pathOfIno: Map<number, string>;
  let used: Awaited<ReturnType<typeof listUsedBlocks>>;

  before(async () => {
    const device = new MemoryBlockDevice(DEVICE_BLOCKS);
    await mkfs(device);
    const volume = await mount(keepOpen(device), { txgIntervalMs: 0 });
    ({ expected, refs: pathOfIno } = await populate(volume));
    await volume.unmount();
    image = device.snapshotBlocks();
    used = await listUsedBlocks(new MemoryBlockDevice(DEVICE_BLOCKS, image));
    assert.ok(used.metadata.length >= 3, `expected a tree of several blocks, got ${used.metadata.length}`);
    assert.ok(used.data.length >= 10, `expected data blocks, got ${used.data.length}`);
  });

  function damaged(blockIndex: number, seed: number): BlockDevice {
    const device = new FaultyBlockDevice(DEVICE_BLOCKS, image);
    device.flipBit(blockIndex, new SeededRandom(seed).int(BLOCK_BITS));
    return keepOpen(device);
  }

  test("the undamaged volume is clean and reads back", async () => {
    const device = keepOpen(new MemoryBlockDevice(DEVICE_BLOCKS, image));
    assert.deepEqual((await fsck(device, { repair: false })).problems, []);
    const volume = await mount(device, { txgIntervalMs: 0 });
    assert.equal(await walkAll(volume, expected), undefined, "no error reading the undamaged volume");
    await volume.unmount();
  });

  test("a damaged tree block: fsck names it; mounting and reading fail with IO naming it", async () => {
    for (const blockIndex of evenlySpread(used.metadata, SAMPLES_MAX)) {
      const what = `tree block ${blockIndex}`;
      const report = await fsck(damaged(blockIndex, blockIndex), { repair: false });
      assert.ok(
        report.problems.some((p) => p.blockIndex === blockIndex),
        `${what}: fsck problems ${JSON.stringify(report.problems)} do not name it`,
      );
      let error: FsError | undefined;
      let volume: Volume | undefined;
      try {
        volume = await mount(damaged(blockIndex, blockIndex), { txgIntervalMs: 0 });
      } catch (mountError) {
        assert.ok(mountError instanceof FsError, `${what}: mount failed with ${String(mountError)}`);
        error = mountError;
      }
      if (volume !== undefined) {
        error = await walkAll(volume, expected);
        // Blocks no read touches (say, allocation state) must show when the volume next allocates.
        error ??= await writeAndCommit(volume);
        await volume.unmount().catch(() => {});
      }
      assertNamesBlock(error, blockIndex, what);
    }
  });

  test("a damaged data block: fsck names it; reading its file fails with IO naming it, other files read", async () => {
    for (const { blockIndex, ino } of evenlySpread(used.data, SAMPLES_MAX)) {
      const path = pathOfIno.get(ino);
      assert.ok(path !== undefined, `data block ${blockIndex} belongs to unknown inode ${ino}`);
      const what = `data block ${blockIndex} of ${path}`;
      const report = await fsck(damaged(blockIndex, blockIndex), { repair: false });
      assert.ok(
        report.problems.some((p) => p.blockIndex === blockIndex),
        `${what}: fsck problems ${JSON.stringify(report.problems)} do not name it`,
      );
      const volume = await mount(damaged(blockIndex, blockIndex), { txgIntervalMs: 0 });
      try {
        const others = new Map(expected);
        others.delete(path);
        const [, dirName, fileName] = path.split("/");
        const dir = await volume.lookup(ROOT, volume.rootRef, dirName!);
        const { ref } = await volume.lookup(ROOT, dir.ref, fileName!);
        let error: FsError | undefined;
        try {
          await checkFile(volume, ref, path, expected.get(path) as Uint8Array);
        } catch (readError) {
          if (!(readError instanceof FsError)) throw readError;
          error = readError;
        }
        assertNamesBlock(error, blockIndex, what);
        for (const [otherPath, want] of others) {
          if (!(want instanceof Uint8Array)) continue;
          const [, d, f] = otherPath.split("/");
          const otherDir = await volume.lookup(ROOT, volume.rootRef, d!);
          const other = await volume.lookup(ROOT, otherDir.ref, f!);
          await checkFile(volume, other.ref, otherPath, want);
        }
      } finally {
        await volume.unmount().catch(() => {});
      }
    }
  });
});

async function writeAndCommit(volume: Volume): Promise<FsError | undefined> {
  try {
    const made = await volume.create(ROOT, volume.rootRef, "after-damage", { kind: "guarded", attrs: {} });
    await volume.write(ROOT, made.ref, 0, patternBytes(1, 3 * BLOCK_BYTES), "unstable");
    await volume.commit();
    return undefined;
  } catch (error) {
    if (error instanceof FsError) return error;
    throw error;
  }
}

/** Runs `flotilla fsck FILE`; resolves with the exit status and everything printed. */
function cliFsck(path: string): Promise<{ status: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join("src", "cli", "main.ts"), "fsck", path], {
      cwd: join(import.meta.dirname, "..", "..", ".."),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.on("error", reject);
    child.on("close", (status) => resolve({ status, output }));
  });
}

async function flipBitInFile(path: string, blockIndex: number, bitIndex: number): Promise<void> {
  const handle = await open(path, "r+");
  try {
    const position = blockIndex * BLOCK_BYTES + Math.floor(bitIndex / 8);
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, position);
    byte[0]! ^= 1 << (bitIndex % 8);
    await handle.write(byte, 0, 1, position);
  } finally {
    await handle.close();
  }
}

describe("flipped bits in a volume file", () => {
  let dir: string;
  let expected: Expected;
  let used: Awaited<ReturnType<typeof listUsedBlocks>>;
  let pristine: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "flotilla-corruption-"));
    pristine = join(dir, "pristine.img");
    const device = await FileBlockDevice.create(pristine, DEVICE_BLOCKS * BLOCK_BYTES);
    await mkfs(device);
    const volume = await mount(device, { txgIntervalMs: 0 });
    ({ expected } = await populate(volume));
    await volume.unmount();
    const reopened = await FileBlockDevice.open(pristine);
    used = await listUsedBlocks(reopened);
    await reopened.close();
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function damagedCopy(name: string, blockIndex: number): Promise<string> {
    const path = join(dir, name);
    const source = await open(pristine, "r");
    const target = await open(path, "w");
    try {
      const buffer = Buffer.alloc(1024 * 1024);
      for (let position = 0; ; position += buffer.length) {
        const { bytesRead } = await source.read(buffer, 0, buffer.length, position);
        if (bytesRead === 0) break;
        await target.write(buffer, 0, bytesRead, position);
      }
    } finally {
      await source.close();
      await target.close();
    }
    await flipBitInFile(path, blockIndex, 8 * 64 + 5);
    return path;
  }

  for (const kind of ["tree", "data"] as const) {
    test(`a damaged ${kind} block: reading fails with IO naming it; flotilla fsck exits 4 and names it`, async () => {
      const blockIndex =
        kind === "tree" ? used.metadata.at(-1)! : used.data[Math.floor(used.data.length / 2)]!.blockIndex;
      const path = await damagedCopy(`${kind}.img`, blockIndex);
      const device = await FileBlockDevice.open(path);
      let error: FsError | undefined;
      try {
        const volume = await mount(device, { txgIntervalMs: 0 });
        error = await walkAll(volume, expected);
        error ??= await writeAndCommit(volume);
        await volume.unmount().catch(() => {});
      } catch (mountError) {
        if (!(mountError instanceof FsError)) throw mountError;
        error = mountError;
      } finally {
        await device.close().catch(() => {});
      }
      assertNamesBlock(error, blockIndex, `${kind} block ${blockIndex}`);
      const { status, output } = await cliFsck(path);
      assert.equal(status, 4, `flotilla fsck exit status; it printed:\n${output}`);
      assert.match(output, new RegExp(`\\b${blockIndex}\\b`), `flotilla fsck names block ${blockIndex}`);
    });
  }
});
