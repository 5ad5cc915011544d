import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { EpochStore } from "../../../src/storage/epoch-store.ts";
import { StorageError } from "../../../src/storage/types.ts";

async function tempDir(): Promise<{ dir: string } & AsyncDisposable> {
  const dir = await mkdtemp(join(tmpdir(), "flotilla-epochs-"));
  return { dir, [Symbol.asyncDispose]: () => rm(dir, { recursive: true, force: true }) };
}

function fenced(error: unknown): boolean {
  assert.ok(error instanceof StorageError, `expected a StorageError, got ${String(error)}`);
  assert.equal(error.code, "FENCED");
  return true;
}

/** A promise and the function that resolves it: to hold work at a point of a test's choosing. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open = () => {};
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

test("epoch store: a raised epoch is persisted before the request that raised it runs, and loads again", async () => {
  await using temp = await tempDir();
  const epochs = await EpochStore.open(temp.dir);
  assert.equal(epochs.current("vol"), 0);
  const seenOnDisk = await epochs.guard("vol", 5, async () =>
    (await EpochStore.open(temp.dir)).current("vol"),
  );
  assert.equal(seenOnDisk, 5, "the epoch file held 5 while the request ran");
  await epochs.fence("other", 3);
  const reloaded = await EpochStore.open(temp.dir);
  assert.equal(reloaded.current("vol"), 5);
  assert.equal(reloaded.current("other"), 3);
  assert.deepEqual((await readdir(temp.dir)).sort(), ["other.epoch", "vol.epoch"]);
});

test("epoch store: a lower epoch is FENCED and its work never runs; the stored epoch never goes back", async () => {
  await using temp = await tempDir();
  const epochs = await EpochStore.open(temp.dir);
  await epochs.fence("vol", 6);
  const before = await readFile(join(temp.dir, "vol.epoch"));
  let ran = false;
  await assert.rejects(
    epochs.guard("vol", 5, async () => {
      ran = true;
    }),
    fenced,
  );
  assert.equal(ran, false);
  await assert.rejects(epochs.fence("vol", 5), fenced);
  await epochs.raise("vol", 2); // what a lagging coordination store says: ignored, not an error
  assert.equal(epochs.current("vol"), 6);
  assert.deepEqual(await readFile(join(temp.dir, "vol.epoch")), before, "the file was not rewritten");
  assert.equal(await epochs.guard("vol", 6, async () => "same epoch runs"), "same epoch runs");
});

test("epoch store: a fence waits for the older owner's requests in flight, and refuses the ones after it", async () => {
  await using temp = await tempDir();
  const epochs = await EpochStore.open(temp.dir);
  const hold = gate();
  const started = gate();
  const events: string[] = [];
  const inFlight = epochs.guard("vol", 5, async () => {
    events.push("epoch 5 write starts");
    started.open();
    await hold.opened;
    events.push("epoch 5 write ends");
  });
  await started.opened;
  const fence = epochs.fence("vol", 6).then(() => events.push("fenced at 6"));
  const late = epochs.guard("vol", 5, async () => events.push("late epoch 5 write (must not run)"));
  const lateRefused = assert.rejects(late, fenced);
  // Time enough for the fence's file to be written many times over, were it not waiting.
  for (let i = 0; i < 50; i++) await readFile(join(temp.dir, "vol.epoch"));
  assert.deepEqual(events, ["epoch 5 write starts"], "the fence waits while an epoch 5 request runs");
  assert.equal(epochs.current("vol"), 5);
  hold.open();
  await Promise.all([inFlight, fence, lateRefused]);
  assert.deepEqual(events, ["epoch 5 write starts", "epoch 5 write ends", "fenced at 6"]);
});

test("epoch store: a damaged epoch file stops the store from opening", async () => {
  await using temp = await tempDir();
  const epochs = await EpochStore.open(temp.dir);
  await epochs.fence("vol", 9);
  const bytes = await readFile(join(temp.dir, "vol.epoch"));
  bytes[10] = (bytes[10] ?? 0) ^ 1;
  await writeFile(join(temp.dir, "vol.epoch"), bytes);
  await assert.rejects(EpochStore.open(temp.dir), /vol\.epoch is damaged \(bad checksum\)/);
});

test("epoch store: a temporary file left by a crash is removed, the old epoch kept", async () => {
  await using temp = await tempDir();
  await (await EpochStore.open(temp.dir)).fence("vol", 4);
  await writeFile(join(temp.dir, "vol.epoch.tmp"), "half written");
  const epochs = await EpochStore.open(temp.dir);
  assert.equal(epochs.current("vol"), 4);
  assert.deepEqual(await readdir(temp.dir), ["vol.epoch"]);
});
