import assert from "node:assert/strict";
import { test } from "node:test";
import {
  BLOCK_BYTES,
  BLOCK_RUN_COUNT_MAX,
  type BlockDevice,
  BlockDeviceError,
} from "../../../src/block/index.ts";

/** `blockCount` blocks whose every byte is `byte`. */
export function filledBlocks(blockCount: number, byte: number): Uint8Array {
  return new Uint8Array(blockCount * BLOCK_BYTES).fill(byte);
}

/** Asserts that `promise` rejects with a BlockDeviceError of `code`. */
export async function rejectsWithCode(
  promise: Promise<unknown>,
  code: BlockDeviceError["code"],
): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof BlockDeviceError, `expected a BlockDeviceError, got ${String(error)}`);
    assert.equal(error.code, code);
    return true;
  });
}

/** The behaviour every BlockDevice shares. `open` makes a fresh, empty device of at least 16 blocks. */
export function testBlockDeviceContract(name: string, open: () => Promise<BlockDevice>): void {
  async function withDevice(body: (device: BlockDevice) => Promise<void>): Promise<void> {
    const device = await open();
    try {
      await body(device);
    } finally {
      await device.close();
    }
  }

  test(`${name}: reads back what was written, single and multi-block`, () =>
    withDevice(async (device) => {
      await device.write(2, filledBlocks(1, 0xab));
      await device.write(5, filledBlocks(3, 0xcd));
      assert.deepEqual(await device.read(2, 1), filledBlocks(1, 0xab));
      assert.deepEqual(await device.read(5, 3), filledBlocks(3, 0xcd));
      const straddling = await device.read(4, 2);
      assert.deepEqual(straddling.subarray(0, BLOCK_BYTES), filledBlocks(1, 0));
      assert.deepEqual(straddling.subarray(BLOCK_BYTES), filledBlocks(1, 0xcd));
    }));

  test(`${name}: blocks never written read as zeros, up to the last block`, () =>
    withDevice(async (device) => {
      assert.deepEqual(await device.read(0, 4), filledBlocks(4, 0));
      assert.deepEqual(await device.read(device.blockCount - 1, 1), filledBlocks(1, 0));
    }));

  test(`${name}: neither keeps the caller's write buffer nor hands out its own`, () =>
    withDevice(async (device) => {
      const data = filledBlocks(1, 1);
      await device.write(0, data);
      data.fill(2);
      const first = await device.read(0, 1);
      first.fill(3);
      assert.deepEqual(await device.read(0, 1), filledBlocks(1, 1));
    }));

  test(`${name}: a bad range fails with code RANGE`, () =>
    withDevice(async (device) => {
      const last = device.blockCount - 1;
      await rejectsWithCode(device.read(-1, 1), "RANGE");
      await rejectsWithCode(device.read(last, 2), "RANGE");
      await rejectsWithCode(device.read(0, 0), "RANGE");
      await rejectsWithCode(device.read(0.5, 1), "RANGE");
      await rejectsWithCode(device.read(0, BLOCK_RUN_COUNT_MAX + 1), "RANGE");
      await rejectsWithCode(device.write(device.blockCount, filledBlocks(1, 1)), "RANGE");
      await rejectsWithCode(device.write(last, filledBlocks(2, 1)), "RANGE");
      await rejectsWithCode(device.write(0, new Uint8Array(100)), "RANGE");
      await rejectsWithCode(device.write(0, new Uint8Array(0)), "RANGE");
    }));

  test(`${name}: after close every call fails with code IO`, async () => {
    const device = await open();
    await device.write(0, filledBlocks(1, 1));
    await device.flush();
    await device.close();
    await rejectsWithCode(device.read(0, 1), "IO");
    await rejectsWithCode(device.write(0, filledBlocks(1, 1)), "IO");
    await rejectsWithCode(device.flush(), "IO");
  });
}
