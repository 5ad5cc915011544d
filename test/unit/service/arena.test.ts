import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
  ARENA_PAGE_BYTES,
  ArenaCorruption,
  ArenaFull,
  type ArenaRef,
  PagePool,
  RECORD_PAYLOAD_BYTES_MAX,
  refKey,
  ServiceArena,
} from "../../../src/service/arena.ts";

const text = (body: Uint8Array): string => Buffer.from(body).toString("utf8");

function put(arena: ServiceArena, kind: number, value: string, refs: ArenaRef[] = []): ArenaRef {
  const bytes = Buffer.from(value, "utf8");
  const ref = arena.alloc(kind, refs, bytes.length);
  arena.body(ref).set(bytes);
  return ref;
}

/** Sends every page of `from` to a second pool (as a move does) and builds the arena there. */
function moved(from: ServiceArena, pool: PagePool): ServiceArena {
  const manifest = from.manifest();
  const images = new Map(manifest.pages.map((p) => [p, from.seal(p)!]));
  return ServiceArena.fromImages(pool, manifest, images, from.pagesMax);
}

/** What the arena holds, independent of where: kind, body and the bodies its refs point at. */
function contents(arena: ServiceArena): string[] {
  const bodyAt = new Map(arena.records().map((r) => [refKey(r.ref), text(r.body)]));
  return arena
    .records()
    .map((r) => `${r.kind}:${text(r.body)}->[${r.refs.map((t) => bodyAt.get(refKey(t))).join(",")}]`);
}

test("arena: records are written, read back with their references, and freed; empty pages go back to the pool", () => {
  const pool = new PagePool(16);
  const arena = new ServiceArena(pool, 7, 16);
  const client = put(arena, 2, "10.0.0.1");
  const mount = put(arena, 3, "/export", [client]);
  assert.deepEqual(arena.refsOf(mount), [client]);
  assert.equal(text(arena.body(mount)), "/export");
  assert.equal(arena.kindOf(client), 2);
  arena.check();
  // Fill past one page, then free everything on the first: it returns to the pool.
  const many: ArenaRef[] = [];
  for (let i = 0; i < 200; i++) many.push(put(arena, 4, "x".repeat(1000)));
  assert.ok(arena.stats().pages >= 3);
  const firstPage = client.page;
  arena.free(mount);
  arena.free(client);
  for (const ref of many.filter((r) => r.page === firstPage)) arena.free(ref);
  assert.equal(arena.manifest().pages.includes(firstPage), false);
  arena.check();
  assert.equal(pool.pagesUsed, arena.stats().pages);
  arena.dispose();
  assert.equal(pool.pagesUsed, 0);
});

test("arena: bounded by its own page limit and by the node's pool, with ArenaFull", () => {
  const small = new ServiceArena(new PagePool(100), 1, 2);
  assert.throws(() => {
    for (let i = 0; i < 10; i++) small.alloc(1, [], RECORD_PAYLOAD_BYTES_MAX);
  }, ArenaFull);
  assert.equal(small.stats().pages, 2);
  const pool = new PagePool(1);
  const a = new ServiceArena(pool, 1, 10);
  a.alloc(1, [], RECORD_PAYLOAD_BYTES_MAX);
  assert.throws(() => a.alloc(1, [], 8), /page pool is full/);
  assert.throws(() => a.alloc(1, [], RECORD_PAYLOAD_BYTES_MAX + 1), /at most/);
});

test("arena: a moved arena is re-based to the target's page numbers and keeps every record and reference", () => {
  const source = new PagePool(64);
  const target = new PagePool(64);
  // The target's low page numbers are taken by another vserver, so every number must change.
  const other = new ServiceArena(target, 9, 64);
  for (let i = 0; i < 40; i++) other.alloc(1, [], 4000);
  const arena = new ServiceArena(source, 5, 64);
  const clients = [put(arena, 2, "a"), put(arena, 2, "b")];
  for (let i = 0; i < 100; i++) put(arena, 3, `m${i}`, [clients[i % 2]!]);
  const before = contents(arena);
  const copy = moved(arena, target);
  assert.deepEqual(contents(copy), before);
  const sourcePages = new Set(arena.manifest().pages);
  assert.ok(
    copy.manifest().pages.every((p) => !sourcePages.has(p)),
    "re-based onto new page numbers",
  );
  copy.check();
  // The copy goes on where the original left off.
  put(copy, 2, "c");
  assert.equal(copy.records().at(-1)!.seq, arena.manifest().nextSeq);
});

test("arena: a damaged page image, a foreign tag or a missing page is refused and the target keeps no pages", () => {
  const arena = new ServiceArena(new PagePool(8), 5, 8);
  const a = put(arena, 2, "a");
  put(arena, 3, "m", [a]);
  const manifest = arena.manifest();
  const page = manifest.pages[0]!;
  const good = arena.seal(page)!;
  const target = new PagePool(8);
  const damaged = good.slice();
  damaged[40] = (damaged[40] ?? 0) ^ 1;
  assert.throws(() => ServiceArena.fromImages(target, manifest, new Map([[page, damaged]]), 8), /checksum/);
  assert.throws(
    () => ServiceArena.fromImages(target, { ...manifest, tag: 6 }, new Map([[page, good]]), 8),
    ArenaCorruption,
  );
  assert.throws(() => ServiceArena.fromImages(target, manifest, new Map(), 8), /never arrived/);
  assert.throws(
    () => ServiceArena.fromImages(target, manifest, new Map([[page, good]]), 0),
    /at least one page/,
  );
  assert.equal(target.pagesUsed, 0);
});

test("arena: dirty pages are those changed since the last copy round", () => {
  const arena = new ServiceArena(new PagePool(8), 1, 8);
  const a = put(arena, 1, "a");
  assert.deepEqual(arena.takeDirty(), [a.page]);
  assert.deepEqual(arena.takeDirty(), []);
  arena.bodyView(a).setUint8(0, 98);
  arena.touch(a);
  assert.equal(arena.dirtyPages, 1);
  assert.deepEqual(arena.takeDirty(), [a.page]);
  assert.equal(text(arena.body(a)), "b");
});

type Step =
  | { op: "alloc"; kind: number; size: number; refTo: number }
  | { op: "free"; which: number }
  | { op: "compact" };

test("arena (property): any run of allocs, frees and compactions, then a move, keeps every live record and reference", () => {
  const step: fc.Arbitrary<Step> = fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record({
        op: fc.constant("alloc" as const),
        kind: fc.integer({ min: 1, max: 9 }),
        size: fc.integer({ min: 0, max: 9000 }),
        refTo: fc.nat(),
      }),
    },
    { weight: 3, arbitrary: fc.record({ op: fc.constant("free" as const), which: fc.nat() }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("compact" as const) }) },
  );
  fc.assert(
    fc.property(fc.array(step, { maxLength: 300 }), (steps) => {
      const pool = new PagePool(256);
      const arena = new ServiceArena(pool, 3, 256);
      // The model: live records by name; each record's body is its name, its ref the name it points at.
      let live: { name: string; ref: ArenaRef; target: string | undefined }[] = [];
      let n = 0;
      for (const s of steps) {
        if (s.op === "alloc") {
          const target = live.length === 0 || s.refTo % 3 === 0 ? undefined : live[s.refTo % live.length]!;
          const name = `r${n++}`.padEnd(Math.max(3, s.size % 2000), ".");
          const ref = put(arena, s.kind, name, target === undefined ? [] : [target.ref]);
          live.push({ name, ref, target: target?.name });
        } else if (s.op === "free") {
          // Only a record nobody points at may go (as the service tables keep it).
          const free = live.filter((r) => !live.some((o) => o.target === r.name));
          const victim = free[s.which % Math.max(1, free.length)];
          if (victim === undefined) continue;
          arena.free(victim.ref);
          live = live.filter((r) => r !== victim);
        } else {
          const moves = arena.compact();
          live = live.map((r) => ({ ...r, ref: moves.get(refKey(r.ref)) ?? r.ref }));
        }
        arena.check();
      }
      const expected = live.map((r) => `${r.name}->${r.target ?? ""}`);
      const read = (a: ServiceArena): string[] => {
        const names = new Map(a.records().map((r) => [refKey(r.ref), text(r.body)]));
        return a.records().map((r) => `${text(r.body)}->${r.refs.map((t) => names.get(refKey(t))).join("")}`);
      };
      assert.deepEqual(read(arena), expected);
      for (const r of live) assert.equal(text(arena.body(r.ref)), r.name);
      const copy = moved(arena, new PagePool(256));
      assert.deepEqual(read(copy), expected);
      assert.ok(arena.stats().bytes <= (live.length + 1) * ARENA_PAGE_BYTES);
    }),
    { numRuns: 150 },
  );
});

test("arena: compaction packs sparse pages and frees the rest", () => {
  const pool = new PagePool(64);
  const arena = new ServiceArena(pool, 1, 64);
  const refs: ArenaRef[] = [];
  for (let i = 0; i < 300; i++) refs.push(put(arena, 1, `v${i}`.padEnd(1000, "-")));
  const pagesBefore = arena.stats().pages;
  for (const [i, ref] of refs.entries()) if (i % 4 !== 0) arena.free(ref);
  arena.compact();
  arena.check();
  assert.ok(
    arena.stats().pages <= Math.ceil(pagesBefore / 4) + 1,
    `${arena.stats().pages} pages after compaction`,
  );
  assert.deepEqual(
    arena.records().map((r) => text(r.body).replace(/-+$/, "")),
    refs.map((_, i) => `v${i}`).filter((_, i) => i % 4 === 0),
  );
  assert.equal(pool.pagesUsed, arena.stats().pages);
});
