import assert from "node:assert/strict";
import { mkdtemp, open, readdir, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { blockChecksums, DATA_OFFSET } from "../../../src/storage/chunk-format.ts";
import { ChunkStore, type ChunkStoreOptions } from "../../../src/storage/chunk-store.ts";
import type { ChunkRef } from "../../../src/storage/types.ts";
import { SeededRandom } from "../../../src/util/random.ts";
import { blocks, rejectsWith } from "../../support/storage-process.ts";

const BLOCK = 4096;

interface Fixture extends AsyncDisposable {
  readonly dir: string;
  store: ChunkStore;
  reopen(options?: Partial<ChunkStoreOptions>): Promise<ChunkStore>;
}

async function openStore(options: Partial<ChunkStoreOptions> = {}): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), "flotilla-chunks-"));
  const fixture: Fixture = {
    dir,
    store: await ChunkStore.open({ dir, ...options }),
    async reopen(again = options) {
      await fixture.store.close();
      fixture.store = await ChunkStore.open({ dir, ...again });
      return fixture.store;
    },
    async [Symbol.asyncDispose]() {
      await fixture.store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return fixture;
}

/** Byte equality without a diff of megabytes when it fails: names the first differing byte. */
function assertBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  if (Buffer.from(actual).equals(Buffer.from(expected))) return;
  const at = actual.findIndex((byte, i) => byte !== expected[i]);
  assert.fail(`${what}: ${actual.length} bytes, expected ${expected.length}; first difference at byte ${at}`);
}

function write(store: ChunkStore, chunk: ChunkRef, blockOffset: number, data: Uint8Array): Promise<void> {
  return store.write(chunk, blockOffset, data, blockChecksums(data));
}

const chunk: ChunkRef = { volumeId: "vol", chunkIndex: 7 };

test("chunk store: written blocks survive a flush, a close and a reopen", async () => {
  await using fixture = await openStore();
  const random = new SeededRandom(1);
  await fixture.store.create(chunk);
  const data = random.bytes(256 * BLOCK);
  await write(fixture.store, chunk, 3840, data);
  await fixture.store.flush("vol");
  const store = await fixture.reopen();
  assert.equal(store.chunkCount, 1);
  assert.ok(store.usedBytes >= data.length, `usedBytes ${store.usedBytes} counts the data`);
  assertBytes((await store.read(chunk, 3840, 256)).data, data, "the written blocks");
  assert.deepEqual((await store.checksums(chunk, 3841)).subarray(3840), blockChecksums(data).subarray(0, 1));
});

test("chunk store: a chunk never written reads as valid zeros, anywhere in its 4096 blocks", async () => {
  await using fixture = await openStore();
  await fixture.store.create(chunk);
  await write(fixture.store, chunk, 300, blocks(9, 1));
  for (const offset of [0, 301, 3840]) {
    assertBytes((await fixture.store.read(chunk, offset, 256)).data, blocks(0, 256), `blocks at ${offset}`);
  }
  const around = (await fixture.store.read(chunk, 299, 3)).data;
  assertBytes(
    around,
    new Uint8Array([...blocks(0, 1), ...blocks(9, 1), ...blocks(0, 1)]),
    "blocks 299 to 301",
  );
});

test("chunk store: a flipped byte in a block fails CHECKSUM naming that block", async () => {
  await using fixture = await openStore();
  await fixture.store.create(chunk);
  await write(fixture.store, chunk, 0, new SeededRandom(2).bytes(16 * BLOCK));
  await fixture.store.flush("vol");
  await fixture.store.close();
  const file = await open(join(fixture.dir, "vol", "7.chunk"), "r+");
  const byte = new Uint8Array(1);
  await file.read(byte, 0, 1, DATA_OFFSET + 11 * BLOCK + 1234);
  byte[0] = (byte[0] ?? 0) ^ 0x40;
  await file.write(byte, 0, 1, DATA_OFFSET + 11 * BLOCK + 1234);
  await file.close();
  const store = await fixture.reopen();
  await assert.rejects(store.read(chunk, 4, 12), rejectsWith("CHECKSUM", { blockIndex: 11 }));
  await assert.rejects(store.read(chunk, 11, 1), rejectsWith("CHECKSUM", { blockIndex: 11 }));
  assert.equal((await store.read(chunk, 0, 11)).data.length, 11 * BLOCK, "the blocks before it still read");
  // Rewriting the block heals it.
  await write(store, chunk, 11, blocks(1, 1));
  assertBytes((await store.read(chunk, 11, 1)).data, blocks(1, 1), "the rewritten block");
});

test("chunk store: concurrent overlapping writes land in the order they were issued", async () => {
  await using fixture = await openStore();
  await fixture.store.create(chunk);
  const pending: Promise<unknown>[] = [];
  const reads: Promise<unknown>[] = [];
  // 64 writes of 64 blocks, each starting one block later: every block is written by many of them.
  for (let i = 0; i < 64; i++) {
    pending.push(write(fixture.store, chunk, i, blocks(i + 1, 64)));
    // Reads between them must never see a block torn between its data and its checksum.
    reads.push(fixture.store.read(chunk, 0, 128));
  }
  await Promise.all([...pending, ...reads]);
  const { data } = await fixture.store.read(chunk, 0, 128);
  for (let block = 0; block < 127; block++) {
    // The last write covering `block` is the one that started at min(block, 63).
    assert.equal(data[block * BLOCK], Math.min(block, 63) + 1, `block ${block}`);
  }
});

test("chunk store: open files stay within their bound, and data written through evicted files is kept", async () => {
  await using fixture = await openStore({ openFilesMax: 4 });
  const chunks = Array.from({ length: 24 }, (_, i) => ({ volumeId: "vol", chunkIndex: i }));
  let openMax = 0;
  const watch = <T>(promise: Promise<T>) =>
    promise.finally(() => {
      openMax = Math.max(openMax, fixture.store.openFileCount);
    });
  await Promise.all(chunks.map((c) => watch(fixture.store.create(c))));
  for (let round = 0; round < 3; round++) {
    await Promise.all(chunks.map((c) => watch(write(fixture.store, c, round, blocks(c.chunkIndex + 1, 1)))));
  }
  assert.ok(openMax <= 4, `at most 4 files open, saw ${openMax}`);
  await fixture.store.flush("vol");
  const store = await fixture.reopen();
  for (const c of chunks) {
    assertBytes((await store.read(c, 0, 3)).data, blocks(c.chunkIndex + 1, 3), `chunk ${c.chunkIndex}`);
  }
});

test("chunk store: missing chunks are NO_CHUNK; create and drop are idempotent", async () => {
  await using fixture = await openStore();
  await assert.rejects(fixture.store.read(chunk, 0, 1), rejectsWith("NO_CHUNK"));
  await assert.rejects(write(fixture.store, chunk, 0, blocks(1, 1)), rejectsWith("NO_CHUNK"));
  await assert.rejects(fixture.store.checksums(chunk, 1), rejectsWith("NO_CHUNK"));
  await fixture.store.create(chunk);
  await write(fixture.store, chunk, 0, blocks(1, 1));
  await fixture.store.create(chunk);
  assertBytes((await fixture.store.read(chunk, 0, 1)).data, blocks(1, 1), "a second create keeps the data");
  await fixture.store.drop(chunk);
  await fixture.store.drop(chunk);
  assert.equal(fixture.store.chunkCount, 0);
  assert.equal(fixture.store.usedBytes, 0);
  await assert.rejects(fixture.store.read(chunk, 0, 1), rejectsWith("NO_CHUNK"));
  assert.deepEqual(await readdir(join(fixture.dir, "vol")), []);
});

test("chunk store: a file of another chunk is IO; a half-made file is removed at open", async () => {
  await using fixture = await openStore();
  await fixture.store.create({ volumeId: "vol", chunkIndex: 1 });
  await fixture.store.close();
  await rename(join(fixture.dir, "vol", "1.chunk"), join(fixture.dir, "vol", "2.chunk"));
  await writeFile(join(fixture.dir, "vol", "3.chunk.tmp"), "half made");
  const store = await fixture.reopen();
  assert.equal(store.chunkCount, 1);
  await assert.rejects(store.read({ volumeId: "vol", chunkIndex: 2 }, 0, 1), rejectsWith("IO"));
  assert.deepEqual((await readdir(join(fixture.dir, "vol"))).sort(), ["2.chunk"]);
});

test("chunk store: a copy writes only blocks no client write touched since filling began", async () => {
  await using fixture = await openStore();
  await fixture.store.beginFill(chunk, 1);
  assert.ok(fixture.store.has(chunk), "beginFill makes the chunk");
  await write(fixture.store, chunk, 5, blocks(7, 2));
  const copy = blocks(3, 10);
  assert.equal(await fixture.store.writeCopy(chunk, 1, 0, copy, blockChecksums(copy)), 8);
  const { data } = await fixture.store.read(chunk, 0, 10);
  assert.deepEqual(
    Array.from({ length: 10 }, (_, i) => data[i * BLOCK]),
    [3, 3, 3, 3, 3, 7, 7, 3, 3, 3],
  );
  // The same generation again keeps the fresh blocks; a higher one forgets them; a lower one is stale.
  await fixture.store.beginFill(chunk, 1);
  assert.equal(await fixture.store.writeCopy(chunk, 1, 0, copy, blockChecksums(copy)), 8);
  await fixture.store.beginFill(chunk, 2);
  await assert.rejects(
    fixture.store.writeCopy(chunk, 1, 0, copy, blockChecksums(copy)),
    rejectsWith("STALE_COPY"),
  );
  await assert.rejects(fixture.store.beginFill(chunk, 1), rejectsWith("STALE_COPY"));
  assert.equal(await fixture.store.writeCopy(chunk, 2, 0, copy, blockChecksums(copy)), 10);
  await fixture.store.endFill(chunk, 2);
  await fixture.store.endFill(chunk, 2);
  await assert.rejects(fixture.store.endFill(chunk, 3), rejectsWith("STALE_COPY"));
  await assert.rejects(
    fixture.store.writeCopy(chunk, 2, 0, copy, blockChecksums(copy)),
    rejectsWith("STALE_COPY"),
  );
});

test("chunk store: the unsafe switch makes copies overwrite fresh blocks (what the race test relies on)", async () => {
  await using fixture = await openStore({ unsafeIgnoreFreshBlocks: true });
  await fixture.store.beginFill(chunk, 1);
  await write(fixture.store, chunk, 0, blocks(7, 1));
  const copy = blocks(3, 2);
  assert.equal(await fixture.store.writeCopy(chunk, 1, 0, copy, blockChecksums(copy)), 2);
  assert.equal((await fixture.store.read(chunk, 0, 1)).data[0], 3);
});
