import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { MemoryBlockDevice } from "../../../src/block/index.ts";
import { checkStore } from "../../../src/fs/fsck.ts";
import { compareKeys, ITEM_VALUE_BYTES_MAX, KEY_MIN, type Key, key } from "../../../src/fs/layout.ts";
import { VolumeStore } from "../../../src/fs/store.ts";

const KEY_MAX: Key = key(Number.MAX_SAFE_INTEGER, 255, Number.MAX_SAFE_INTEGER);

async function allItems(store: VolumeStore): Promise<Array<[string, string]>> {
  const out: Array<[string, string]> = [];
  await store.tree.scan(KEY_MIN, KEY_MAX, (k, v) => {
    if (k.oid !== 0) out.push([`${k.oid}/${k.type}/${k.offset}`, Buffer.from(v).toString("hex")]);
    return true;
  });
  return out;
}

function modelItems(model: Map<string, { k: Key; v: Uint8Array }>): Array<[string, string]> {
  return [...model.values()]
    .sort((a, b) => compareKeys(a.k, b.k))
    .map(({ k, v }) => [`${k.oid}/${k.type}/${k.offset}`, Buffer.from(v).toString("hex")]);
}

type TreeOp =
  | { kind: "put"; oid: number; offset: number; length: number; fill: number }
  | { kind: "delete"; oid: number; offset: number }
  | { kind: "commit" }
  | { kind: "reopen" };

const opArb: fc.Arbitrary<TreeOp> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant("put" as const),
      oid: fc.integer({ min: 10, max: 14 }),
      offset: fc.integer({ min: 0, max: 400 }),
      length: fc.oneof(fc.integer({ min: 0, max: 64 }), fc.integer({ min: 0, max: ITEM_VALUE_BYTES_MAX })),
      fill: fc.integer({ min: 0, max: 255 }),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("delete" as const),
      oid: fc.integer({ min: 10, max: 14 }),
      offset: fc.integer({ min: 0, max: 400 }),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: "commit" as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: "reopen" as const }) },
);

test("the tree matches a sorted map through puts, deletes, commits and reopens; every commit checks clean", async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 400 }), async (ops) => {
      const device = new MemoryBlockDevice(8192);
      let store = await VolumeStore.format(device, 0);
      const model = new Map<string, { k: Key; v: Uint8Array }>();
      for (const op of ops) {
        if (op.kind === "put") {
          const k = key(op.oid, 4, op.offset);
          const v = new Uint8Array(op.length).fill(op.fill);
          await store.tree.put(k, v);
          model.set(`${op.oid}/${op.offset}`, { k, v });
        } else if (op.kind === "delete") {
          const existed = await store.tree.delete(key(op.oid, 4, op.offset));
          assert.equal(existed, model.delete(`${op.oid}/${op.offset}`));
        } else {
          await store.commit();
          if (op.kind === "reopen") store = await VolumeStore.open(device);
        }
      }
      assert.deepEqual(await allItems(store), modelItems(model));
      await store.commit();
      const reopened = await VolumeStore.open(device);
      assert.deepEqual(await allItems(reopened), modelItems(model));
      const check = await checkStore(reopened);
      const structural = check.problems.filter((p) =>
        ["checksum", "tree", "double-use", "free-map", "leak", "used-count"].includes(p.kind),
      );
      assert.deepEqual(structural, []);
    }),
    { numRuns: Number(process.env.FLOTILLA_PROPERTY_RUNS ?? 60), verbose: true },
  );
});

test("a tree of 50,000 items splits into several levels and scans back in key order", async () => {
  const device = new MemoryBlockDevice(32768);
  const store = await VolumeStore.format(device, 0);
  const n = 50_000;
  for (let i = 0; i < n; i++) await store.tree.put(key(7, 3, (i * 7919) % n), new Uint8Array([i & 0xff]));
  await store.commit();
  const reopened = await VolumeStore.open(device);
  const root = await reopened.tree.load(reopened.tree.root);
  assert.ok(root.level >= 2, `expected at least three levels, root is level ${root.level}`);
  let expected = 0;
  await reopened.tree.scan(key(7, 3, 0), key(7, 3, n), (k) => {
    assert.equal(k.offset, expected++);
    return true;
  });
  assert.equal(expected, n);
  for (let i = 0; i < n; i += 2) await reopened.tree.delete(key(7, 3, i));
  await reopened.commit();
  let left = 0;
  await reopened.tree.scan(key(7, 3, 0), key(7, 3, n), () => ++left > 0);
  assert.equal(left, n / 2);
});
