import assert from "node:assert/strict";
import { test } from "node:test";
import { type CachedFile, OpenFileCache } from "../../../src/storage/open-files.ts";

class FakeFile implements CachedFile {
  dirty = false;
  readonly log: string[];
  readonly key: string;
  constructor(key: string, log: string[]) {
    this.key = key;
    this.log = log;
  }
  async sync(): Promise<void> {
    this.log.push(`sync ${this.key}`);
    this.dirty = false;
  }
  async close(): Promise<void> {
    this.log.push(`close ${this.key}`);
  }
}

function cache(openMax: number, log: string[]): OpenFileCache<FakeFile> {
  return new OpenFileCache<FakeFile>({
    openMax,
    open: async (key) => {
      log.push(`open ${key}`);
      return new FakeFile(key, log);
    },
    onSyncError: () => assert.fail("no sync fails here"),
    onCloseError: () => assert.fail("no close fails here"),
  });
}

test("open files: the least recently used file is closed first, and synced first if dirty", async () => {
  const log: string[] = [];
  const files = cache(2, log);
  await files.use("a", async (f) => {
    f.dirty = true;
  });
  await files.use("b", async () => {});
  await files.use("a", async () => {}); // a is now the most recently used
  await files.use("c", async () => {});
  await files.use("a", async (f) => {
    f.dirty = true;
  });
  await files.use("d", async () => {});
  assert.deepEqual(
    log,
    ["open a", "open b", "close b", "open c", "close c", "open d"],
    "b, then c, went first",
  );
  await files.closeAll();
  // closeAll closes in parallel, syncing what is dirty before closing it.
  const closing = log.slice(6);
  assert.deepEqual([...closing].sort(), ["close a", "close d", "sync a"]);
  assert.ok(closing.indexOf("sync a") < closing.indexOf("close a"), "a is synced before it is closed");
});

test("open files: a file in use is never closed; a caller waits for a slot instead", async () => {
  const log: string[] = [];
  const files = cache(1, log);
  let release = () => {};
  const held = files.use(
    "a",
    () =>
      new Promise<void>((resolve) => {
        release = resolve;
      }),
  );
  await new Promise((resolve) => setImmediate(resolve));
  let bDone = false;
  const b = files.use("b", async () => {
    bDone = true;
  });
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(bDone, false, "b waits while a is in use");
  assert.equal(files.openCount, 1);
  release();
  await Promise.all([held, b]);
  assert.deepEqual(log, ["open a", "close a", "open b"]);
  await files.closeAll();
});

test("open files: discard closes without syncing; syncIfOpen syncs only what is open", async () => {
  const log: string[] = [];
  const files = cache(4, log);
  await files.use("a", async (f) => {
    f.dirty = true;
  });
  await files.use("b", async (f) => {
    f.dirty = true;
  });
  await files.syncIfOpen("a");
  await files.syncIfOpen("never-opened");
  await files.discard("b");
  await files.closeAll();
  assert.deepEqual(log, ["open a", "open b", "sync a", "close b", "close a"]);
});
