import assert from "node:assert/strict";
import { test } from "node:test";
import { BLOCK_BYTES, type BlockDevice, FaultyBlockDevice } from "../../../src/block/index.ts";
import { SeededRandom } from "../../../src/util/random.ts";
import { filledBlocks, rejectsWithCode, testBlockDeviceContract } from "./contract.ts";

testBlockDeviceContract("FaultyBlockDevice", async () => new FaultyBlockDevice(64));

/** The first byte of each of the device's first `blockCount` blocks. */
async function firstBytes(device: BlockDevice, blockCount: number): Promise<number[]> {
  const data = await device.read(0, blockCount);
  return Array.from({ length: blockCount }, (_, i) => data[i * BLOCK_BYTES] ?? -1);
}

test("FaultyBlockDevice: counts block writes, a multi-block write as one per block", async () => {
  const device = new FaultyBlockDevice(16);
  await device.write(0, filledBlocks(3, 1));
  await device.flush();
  await device.write(5, filledBlocks(1, 2));
  assert.equal(device.writeCount, 4);
  assert.equal(device.flushCount, 1);
  assert.equal(device.unflushedWriteCount, 1);
});

test("FaultyBlockDevice: imageAfterWrites gives every prefix of the history, tearing multi-block writes", async () => {
  const device = new FaultyBlockDevice(4, new Map([[3, filledBlocks(1, 9)]]));
  await device.write(0, filledBlocks(2, 1));
  await device.flush();
  await device.write(1, filledBlocks(1, 2));
  await device.write(3, filledBlocks(1, 3));
  const expected = [
    [0, 0, 0, 9],
    [1, 0, 0, 9],
    [1, 1, 0, 9],
    [1, 2, 0, 9],
    [1, 2, 0, 3],
  ];
  for (const [writeCount, blocks] of expected.entries()) {
    assert.deepEqual(await firstBytes(device.imageAfterWrites(writeCount), 4), blocks, `after ${writeCount}`);
  }
  assert.throws(() => device.imageAfterWrites(5), RangeError);
  assert.throws(() => device.imageAfterWrites(-1), RangeError);
});

test("FaultyBlockDevice: an image is independent of the device and of other images", async () => {
  const device = new FaultyBlockDevice(4);
  await device.write(0, filledBlocks(1, 1));
  const image = device.imageAfterWrites(1);
  await image.write(0, filledBlocks(1, 7));
  await device.write(0, filledBlocks(1, 2));
  assert.deepEqual(await firstBytes(device.imageAfterWrites(1), 1), [1]);
  assert.deepEqual(await firstBytes(image, 1), [7]);
});

test("FaultyBlockDevice: a power cut loses exactly the writes after the last flush", async () => {
  const device = new FaultyBlockDevice(8);
  await device.write(0, filledBlocks(2, 1));
  await device.flush();
  await device.write(1, filledBlocks(1, 2));
  await device.write(2, filledBlocks(2, 3));
  await device.flush();
  await device.write(3, filledBlocks(1, 4));
  await device.write(5, filledBlocks(1, 5));
  assert.deepEqual(await firstBytes(device.imageAfterPowerCut(), 6), [1, 2, 3, 3, 0, 0]);
  assert.deepEqual(await firstBytes(device, 6), [1, 2, 3, 4, 0, 5]);
});

test("FaultyBlockDevice: a random unflushed subset keeps all flushed data and only some unflushed writes", async () => {
  const device = new FaultyBlockDevice(64);
  await device.write(0, filledBlocks(8, 1));
  await device.flush();
  for (let blockIndex = 8; blockIndex < 40; blockIndex++) await device.write(blockIndex, filledBlocks(1, 2));
  const random = new SeededRandom(42);
  const keptCounts = new Set<number>();
  for (let round = 0; round < 20; round++) {
    const bytes = await firstBytes(device.imageWithRandomUnflushedSubset(random), 64);
    assert.deepEqual(bytes.slice(0, 8), Array(8).fill(1), "flushed blocks survive");
    assert.deepEqual(bytes.slice(40), Array(24).fill(0), "nothing appears that was never written");
    const kept = bytes.slice(8, 40);
    assert.ok(
      kept.every((b) => b === 0 || b === 2),
      "an unflushed block is either its old or its new content",
    );
    keptCounts.add(kept.filter((b) => b === 2).length);
  }
  // With 32 coin flips per round, a subset that is always everything or always nothing is a bug.
  assert.ok(
    [...keptCounts].some((count) => count > 0 && count < 32),
    `kept counts ${[...keptCounts]}`,
  );
});

test("FaultyBlockDevice: failWriteAfter fails the (n+1)-th write call, which writes nothing", async () => {
  const device = new FaultyBlockDevice(8);
  device.failWriteAfter(2);
  await device.write(0, filledBlocks(1, 1));
  await device.write(1, filledBlocks(1, 1));
  await rejectsWithCode(device.write(2, filledBlocks(3, 1)), "IO");
  assert.equal(device.writeCount, 2);
  assert.deepEqual(await firstBytes(device, 5), [1, 1, 0, 0, 0]);
  await device.write(2, filledBlocks(1, 1));
  assert.equal(device.writeCount, 3, "the failure is injected once");
});

test("FaultyBlockDevice: failWriteAfter(0) fails the very next write", async () => {
  const device = new FaultyBlockDevice(8);
  device.failWriteAfter(0);
  await rejectsWithCode(device.write(0, filledBlocks(1, 1)), "IO");
  assert.equal(device.writeCount, 0);
});

test("FaultyBlockDevice: a failed flush makes nothing durable", async () => {
  const device = new FaultyBlockDevice(8);
  await device.write(0, filledBlocks(1, 1));
  device.failFlushAfter(0);
  await rejectsWithCode(device.flush(), "IO");
  assert.equal(device.flushCount, 0);
  assert.equal(device.unflushedWriteCount, 1);
  assert.deepEqual(await firstBytes(device.imageAfterPowerCut(), 1), [0]);
  await device.flush();
  assert.deepEqual(await firstBytes(device.imageAfterPowerCut(), 1), [1]);
});

test("FaultyBlockDevice: flipBit flips one bit, on the device and in later images", async () => {
  const device = new FaultyBlockDevice(4);
  await device.write(1, filledBlocks(1, 0));
  await device.flush();
  device.flipBit(1, 8 * 100 + 3);
  const expected = filledBlocks(1, 0);
  expected[100] = 0b1000;
  assert.deepEqual(await device.read(1, 1), expected);
  assert.deepEqual(await device.imageAfterPowerCut().read(1, 1), expected);
  assert.deepEqual(await device.imageAfterWrites(1).read(1, 1), expected);
  device.flipBit(1, 8 * 100 + 3);
  assert.deepEqual(await device.read(1, 1), filledBlocks(1, 0));
  assert.throws(() => device.flipBit(1, BLOCK_BYTES * 8), RangeError);
  assert.throws(() => device.flipBit(1, -1), RangeError);
});

test("FaultyBlockDevice: a bit flip does not show in an image cut before it happened", async () => {
  const device = new FaultyBlockDevice(4);
  await device.write(0, filledBlocks(1, 0));
  await device.write(1, filledBlocks(1, 0));
  device.flipBit(0, 0);
  assert.deepEqual(await firstBytes(device.imageAfterWrites(2), 1), [1]);
  assert.deepEqual(await firstBytes(device.imageAfterWrites(1), 1), [0]);
});

test("FaultyBlockDevice: after powerOff reads, writes and flushes fail, and images still work", async () => {
  const device = new FaultyBlockDevice(4);
  await device.write(0, filledBlocks(1, 1));
  await device.flush();
  device.powerOff();
  await rejectsWithCode(device.read(0, 1), "IO");
  await rejectsWithCode(device.write(0, filledBlocks(1, 2)), "IO");
  await rejectsWithCode(device.flush(), "IO");
  assert.equal(device.writeCount, 1);
  assert.deepEqual(await firstBytes(device.imageAfterPowerCut(), 1), [1]);
  await device.close();
});
