// Large reads come in reused buffers (the READ path hands them back once the reply is sent): a reused
// buffer must never leak an earlier read's bytes, and the pool must refuse a buffer given back twice.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import {
  BLOCK_BYTES,
  type BlockDevice,
  FaultyBlockDevice,
  FileBlockDevice,
} from "../../../src/block/index.ts";
import { mkfs, mount, type Volume } from "../../../src/fs/index.ts";
import { POOLED_READ_BYTES_MIN } from "../../../src/fs/read-buffers.ts";
import { ROOT } from "../../support/fs-ops.ts";

const MIB = 1024 * 1024;
const dir = await mkdtemp(join(tmpdir(), "flotilla-read-buffers-"));
after(() => rm(dir, { recursive: true, force: true }));

function patterned(seed: number, length: number): Uint8Array {
  return Uint8Array.from({ length }, (_, k) => (seed * 131 + k * 7 + (k >> 12)) & 0xff);
}

async function withVolume(device: BlockDevice, body: (volume: Volume) => Promise<void>): Promise<void> {
  await mkfs(device);
  const volume = await mount(device, { txgIntervalMs: 0 });
  try {
    await body(volume);
  } finally {
    await volume.unmount();
  }
}

const devices: Array<[string, () => Promise<BlockDevice>]> = [
  // FileBlockDevice reads straight into the buffer; FaultyBlockDevice has no readInto (read, then copy).
  ["file device", () => FileBlockDevice.create(join(dir, `d-${Math.random()}.img`), 64 * MIB)],
  ["device without readInto", async () => new FaultyBlockDevice((64 * MIB) / BLOCK_BYTES)],
];

for (const [name, open] of devices) {
  test(`${name}: a large read comes with a release; the bytes are the file's`, async () => {
    await withVolume(await open(), async (volume) => {
      const made = await volume.create(ROOT, volume.rootRef, "big", {
        kind: "guarded",
        attrs: { mode: 0o644 },
      });
      const content = patterned(1, 3 * MIB);
      await volume.write(ROOT, made.ref, 0, content, "file-sync");
      for (const [offset, count] of [
        [0, MIB],
        [MIB + 123, MIB],
        [3 * MIB - 70_000, MIB],
      ] as const) {
        const read = await volume.read(ROOT, made.ref, offset, count);
        assert.deepEqual(read.data, content.subarray(offset, Math.min(offset + count, content.length)));
        assert.equal(typeof read.release, "function", `a read of ${read.data.length} bytes is pooled`);
        read.release?.();
      }
      const small = await volume.read(ROOT, made.ref, 5, POOLED_READ_BYTES_MIN - 2 * BLOCK_BYTES);
      assert.equal(small.release, undefined, "a small read is a fresh buffer with nothing to give back");
      assert.deepEqual(small.data, content.subarray(5, 5 + POOLED_READ_BYTES_MIN - 2 * BLOCK_BYTES));
    });
  });

  test(`${name}: a reused buffer reads a sparse file's holes as zeros`, async () => {
    await withVolume(await open(), async (volume) => {
      const full = await volume.create(ROOT, volume.rootRef, "full", {
        kind: "guarded",
        attrs: { mode: 0o644 },
      });
      await volume.write(ROOT, full.ref, 0, new Uint8Array(MIB).fill(0xab), "file-sync");
      const sparse = await volume.create(ROOT, volume.rootRef, "sparse", {
        kind: "guarded",
        attrs: { mode: 0o644 },
      });
      // Data at 256 KiB and at the end; everything else is a hole.
      const middle = patterned(2, 8 * BLOCK_BYTES);
      await volume.write(ROOT, sparse.ref, 256 * 1024, middle, "file-sync");
      await volume.write(ROOT, sparse.ref, MIB - BLOCK_BYTES, patterned(3, BLOCK_BYTES), "file-sync");
      const expected = new Uint8Array(MIB);
      expected.set(middle, 256 * 1024);
      expected.set(patterned(3, BLOCK_BYTES), MIB - BLOCK_BYTES);
      // Fill the pool with buffers full of 0xab, then read the sparse file from one of them.
      for (let round = 0; round < 4; round++) {
        const dirty = await Promise.all([0, 1, 2].map(() => volume.read(ROOT, full.ref, 0, MIB)));
        for (const read of dirty) {
          assert.ok(read.data.every((b) => b === 0xab));
          read.release?.();
        }
        const read = await volume.read(ROOT, sparse.ref, 0, MIB);
        assert.deepEqual(read.data, expected, `round ${round}: holes read as zeros from a reused buffer`);
        read.release?.();
      }
    });
  });
}

test("a read's release may be called once only", async () => {
  await withVolume(new FaultyBlockDevice((16 * MIB) / BLOCK_BYTES), async (volume) => {
    const made = await volume.create(ROOT, volume.rootRef, "f", { kind: "guarded", attrs: { mode: 0o644 } });
    await volume.write(ROOT, made.ref, 0, patterned(4, MIB), "file-sync");
    const read = await volume.read(ROOT, made.ref, 0, MIB);
    read.release?.();
    assert.throws(() => read.release?.(), /given back once/);
  });
});
