import assert from "node:assert/strict";
import { test } from "node:test";
import { BlockAllocator } from "../../../src/fs/allocator.ts";
import { FsError } from "../../../src/fs/errors.ts";
import { GROUP_BLOCKS, RESERVED_BLOCK_COUNT } from "../../../src/fs/layout.ts";

const fresh = (blockCount: number): BlockAllocator =>
  new BlockAllocator(blockCount, RESERVED_BLOCK_COUNT, async () => undefined);

test("allocation never hands out reserved blocks or blocks past the device end", async () => {
  const allocator = fresh(RESERVED_BLOCK_COUNT + 100);
  const seen = new Set<number>();
  for (;;) {
    const run = await allocator.allocate(7).catch((e: unknown) => e);
    if (run instanceof FsError) {
      assert.equal(run.code, "NOSPC");
      break;
    }
    assert.ok(!(run instanceof Error));
    const { start, count } = run as { start: number; count: number };
    for (let b = start; b < start + count; b++) {
      assert.ok(
        b >= RESERVED_BLOCK_COUNT && b < RESERVED_BLOCK_COUNT + 100,
        `block ${b} outside the data area`,
      );
      assert.ok(!seen.has(b), `block ${b} handed out twice`);
      seen.add(b);
    }
  }
  assert.equal(seen.size, 100);
  assert.equal(allocator.freeBlocks, 0);
});

test("a block freed in the same transaction group is reusable at once; a committed one only after the commit", async () => {
  const allocator = fresh(RESERVED_BLOCK_COUNT + 64);
  const first = await allocator.allocate(1);
  allocator.release(first.start);
  assert.equal(allocator.freeBlocks, 64);
  const kept = await allocator.allocate(1);
  allocator.commitDone();
  allocator.release(kept.start);
  assert.equal(allocator.pendingFreeBlocks, 1);
  assert.equal(allocator.committedUsedBlocks, RESERVED_BLOCK_COUNT);
  assert.ok(await allocator.isMarkedUsed(kept.start), "a pending free is still in use until the commit");
  const persisted = await allocator.groupsToPersist();
  const bits = persisted.find((g) => g.groupIndex === 0)?.bits;
  assert.ok(bits !== undefined);
  assert.equal(bits[kept.start >> 3]! & (1 << (kept.start & 7)), 0, "the commit records the block as free");
  allocator.commitDone();
  assert.equal(await allocator.isMarkedUsed(kept.start), false);
});

test("freeing a block twice is caught as a bug", async () => {
  const allocator = fresh(RESERVED_BLOCK_COUNT + 64);
  const run = await allocator.allocate(1);
  allocator.release(run.start);
  assert.throws(() => allocator.release(run.start), /freed twice|not in use/);
});

test("runs are contiguous and cross no group boundary; allocation spans groups", async () => {
  const allocator = fresh(GROUP_BLOCKS * 2 + RESERVED_BLOCK_COUNT + 100);
  let total = 0;
  while (total < GROUP_BLOCKS * 2) {
    const run = await allocator.allocate(1000);
    assert.equal(
      Math.floor(run.start / GROUP_BLOCKS),
      Math.floor((run.start + run.count - 1) / GROUP_BLOCKS),
    );
    total += run.count;
  }
  assert.equal(allocator.usedBlocks, RESERVED_BLOCK_COUNT + total);
});
