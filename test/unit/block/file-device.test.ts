import assert from "node:assert/strict";
import { mkdtemp, rm, stat, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { BLOCK_BYTES, BlockDeviceError, FileBlockDevice } from "../../../src/block/index.ts";
import { filledBlocks, rejectsWithCode, testBlockDeviceContract } from "./contract.ts";

const dir = await mkdtemp(join(tmpdir(), "flotilla-file-device-"));
after(() => rm(dir, { recursive: true, force: true }));

let fileNumber = 0;
function freshPath(): string {
  fileNumber++;
  return join(dir, `device-${fileNumber}.img`);
}

testBlockDeviceContract("FileBlockDevice", () => FileBlockDevice.create(freshPath(), 64 * BLOCK_BYTES));

test("FileBlockDevice: create makes a sparse file of the asked size", async () => {
  const path = freshPath();
  const device = await FileBlockDevice.create(path, 1024 * 1024 * 1024);
  await device.close();
  const info = await stat(path);
  assert.equal(info.size, 1024 * 1024 * 1024);
  assert.equal(device.blockCount, (1024 * 1024 * 1024) / BLOCK_BYTES);
  // A gibibyte of zeros that takes (almost) no host space proves the file is sparse.
  assert.ok(info.blocks * 512 < 1024 * 1024, `file takes ${info.blocks * 512} bytes of host space`);
});

test("FileBlockDevice: create refuses a size that is not a positive multiple of the block size", async () => {
  for (const sizeBytes of [0, -BLOCK_BYTES, BLOCK_BYTES + 1, 1.5 * BLOCK_BYTES]) {
    await assert.rejects(FileBlockDevice.create(freshPath(), sizeBytes), RangeError);
  }
});

test("FileBlockDevice: create refuses an existing file and leaves it alone", async () => {
  const path = freshPath();
  await writeFile(path, "keep me");
  await rejectsWithCode(FileBlockDevice.create(path, BLOCK_BYTES), "IO");
  assert.equal((await stat(path)).size, "keep me".length);
});

test("FileBlockDevice: data written, flushed and closed is there after open", async () => {
  const path = freshPath();
  const device = await FileBlockDevice.create(path, 16 * BLOCK_BYTES);
  await device.write(15, filledBlocks(1, 0x5a));
  await device.flush();
  await device.close();
  const reopened = await FileBlockDevice.open(path);
  assert.equal(reopened.blockCount, 16);
  assert.deepEqual(await reopened.read(15, 1), filledBlocks(1, 0x5a));
  await reopened.close();
});

test("FileBlockDevice: open of a missing file is an IO error that keeps the host error", async () => {
  await assert.rejects(FileBlockDevice.open(join(dir, "missing.img")), (error: unknown) => {
    assert.ok(error instanceof BlockDeviceError);
    assert.equal(error.code, "IO");
    assert.match(error.message, /missing\.img/);
    assert.equal((error.cause as NodeJS.ErrnoException).code, "ENOENT");
    return true;
  });
});

test("FileBlockDevice: open refuses an empty file or one that is not whole blocks", async () => {
  for (const sizeBytes of [0, 1000, 3 * BLOCK_BYTES + 1]) {
    const path = freshPath();
    await writeFile(path, new Uint8Array(sizeBytes));
    await assert.rejects(FileBlockDevice.open(path), (error: unknown) => {
      assert.ok(error instanceof BlockDeviceError);
      assert.equal(error.code, "IO");
      assert.match(error.message, new RegExp(`${sizeBytes} bytes`));
      return true;
    });
  }
});

test("FileBlockDevice: a read past the end of a file that shrank returns zeros", async () => {
  const path = freshPath();
  const device = await FileBlockDevice.create(path, 8 * BLOCK_BYTES);
  await device.write(6, filledBlocks(2, 9));
  await truncate(path, 7 * BLOCK_BYTES);
  const data = await device.read(6, 2);
  assert.deepEqual(data.subarray(0, BLOCK_BYTES), filledBlocks(1, 9));
  assert.deepEqual(data.subarray(BLOCK_BYTES), filledBlocks(1, 0));
  await device.close();
});
