import assert from "node:assert/strict";
import { test } from "node:test";
import { MemoryBlockDevice } from "../../../src/block/index.ts";
import { filledBlocks, testBlockDeviceContract } from "./contract.ts";

testBlockDeviceContract("MemoryBlockDevice", async () => new MemoryBlockDevice(64));

test("MemoryBlockDevice: starts from a copy of the given blocks", async () => {
  const initial = new Map([[3, filledBlocks(1, 7)]]);
  const device = new MemoryBlockDevice(8, initial);
  initial.get(3)?.fill(0);
  assert.deepEqual(await device.read(3, 1), filledBlocks(1, 7));
});

test("MemoryBlockDevice: refuses a bad block count or initial blocks outside the device", () => {
  assert.throws(() => new MemoryBlockDevice(0), RangeError);
  assert.throws(() => new MemoryBlockDevice(1.5), RangeError);
  assert.throws(() => new MemoryBlockDevice(4, new Map([[4, filledBlocks(1, 1)]])), RangeError);
});

test("MemoryBlockDevice: snapshotBlocks is a deep copy of the written blocks only", async () => {
  const device = new MemoryBlockDevice(8);
  await device.write(1, filledBlocks(2, 5));
  const snapshot = device.snapshotBlocks();
  assert.deepEqual([...snapshot.keys()].sort(), [1, 2]);
  snapshot.get(1)?.fill(0);
  await device.write(2, filledBlocks(1, 6));
  assert.deepEqual(snapshot.get(2), filledBlocks(1, 5));
  assert.deepEqual(await device.read(1, 1), filledBlocks(1, 5));
});
