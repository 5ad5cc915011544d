import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { allBlocks, blockRuns, stillUnverified } from "../../../src/storage/copy-verification.ts";

test("copy verification: a block seen equal in one round stays verified when a later round sees it differ", () => {
  const source = Uint32Array.from([1, 2, 3, 4]);
  // Round 1: blocks 1 and 3 are in flight on the target.
  let unverified = stillUnverified(allBlocks(4), source, Uint32Array.from([1, 9, 3, 9]));
  assert.deepEqual(unverified, [1, 3]);
  // Round 2: block 1 has landed, block 0 (verified) has a new write in flight.
  unverified = stillUnverified(unverified, Uint32Array.from([7, 2, 3, 4]), Uint32Array.from([1, 2, 3, 9]));
  assert.deepEqual(unverified, [3]);
  assert.deepEqual(stillUnverified(unverified, source, source), []);
});

test("copy verification: a target shorter than its source leaves the missing blocks unverified", () => {
  assert.deepEqual(stillUnverified(allBlocks(3), Uint32Array.from([5, 5, 5]), Uint32Array.from([5])), [1, 2]);
});

test("block runs: consecutive blocks merge into runs", () => {
  assert.deepEqual(blockRuns([1, 2, 4, 7, 8, 9]), [
    [1, 2],
    [4, 1],
    [7, 3],
  ]);
  assert.deepEqual(blockRuns([]), []);
});

const roundsArbitrary = fc
  .integer({ min: 1, max: 64 })
  .chain((blockCount) =>
    fc.array(
      fc.tuple(
        fc.uint32Array({ minLength: blockCount, maxLength: blockCount, max: 3 }),
        fc.uint32Array({ minLength: blockCount, maxLength: blockCount, max: 3 }),
      ),
      { minLength: 1, maxLength: 8 },
    ),
  );

test("copy verification (property): after any rounds, exactly the blocks that differed in every round are unverified", () => {
  fc.assert(
    fc.property(roundsArbitrary, (rounds) => {
      const blockCount = rounds[0]?.[0].length ?? 0;
      let unverified = allBlocks(blockCount);
      for (const [source, target] of rounds) {
        const next = stillUnverified(unverified, source, target);
        assert.ok(
          next.every((block, i) => i === 0 || (next[i - 1] ?? -1) < block),
          "the set stays ascending",
        );
        unverified = next;
      }
      const neverEqual = allBlocks(blockCount).filter((block) =>
        rounds.every(([source, target]) => source[block] !== target[block]),
      );
      assert.deepEqual(unverified, neverEqual);
    }),
  );
});

test("block runs (property): runs are ascending, maximal and cover exactly the blocks", () => {
  fc.assert(
    fc.property(fc.uniqueArray(fc.integer({ min: 0, max: 4095 }), { maxLength: 200 }), (blocks) => {
      const sorted = [...blocks].sort((x, y) => x - y);
      const runs = blockRuns(sorted);
      const covered = runs.flatMap(([start, count]) => Array.from({ length: count }, (_, i) => start + i));
      assert.deepEqual(covered, sorted);
      for (let i = 1; i < runs.length; i++) {
        const [previousStart, previousCount] = runs[i - 1] ?? [0, 0];
        assert.ok(previousStart + previousCount < (runs[i]?.[0] ?? 0), "runs neither touch nor overlap");
      }
    }),
  );
});
