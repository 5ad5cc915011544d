import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { MinHeap } from "../../../src/cluster/planner-heap.ts";

test("the heap gives back what was pushed, smallest first, across interleaved pushes and pops", () => {
  fc.assert(
    fc.property(
      fc.array(fc.option(fc.integer({ min: -50, max: 50 }), { nil: undefined }), { maxLength: 200 }),
      (ops) => {
        const heap = new MinHeap<number>((a, b) => a < b);
        const model: number[] = [];
        for (const op of ops) {
          if (op === undefined) {
            model.sort((a, b) => a - b);
            assert.equal(heap.pop(), model.shift());
          } else {
            heap.push(op);
            model.push(op);
          }
          assert.equal(heap.size, model.length);
        }
      },
    ),
  );
});

test("an empty heap has nothing to peek at or pop", () => {
  const heap = new MinHeap<string>((a, b) => a < b);
  assert.equal(heap.peek(), undefined);
  assert.equal(heap.pop(), undefined);
});
