/**
 * Bad input gets the exact error code docs/fs-semantics.md names: bad names, wrong object types,
 * offsets and sizes out of range, stale handles, bad readdir cookies, permission failures, a full volume.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type BlockDevice, MemoryBlockDevice } from "../../../src/block/index.ts";
import {
  type Credentials,
  FsError,
  type FsErrorCode,
  fsck,
  mkfs,
  mount,
  type NodeRef,
  type Volume,
} from "../../../src/fs/index.ts";
import { ALICE, BOB, ROOT } from "../../support/fs-ops.ts";
import { keepOpen } from "../../support/keep-open.ts";

const FILE_BYTES_MAX = 2 ** 43;
const GUARDED = { kind: "guarded", attrs: {} } as const;

async function rejectsWith(promise: Promise<unknown>, code: FsErrorCode, what: string): Promise<void> {
  let outcome: unknown;
  try {
    outcome = await promise;
  } catch (error) {
    assert.ok(error instanceof FsError, `${what}: expected FsError ${code}, got ${String(error)}`);
    assert.equal(error.code, code, `${what}: expected ${code}, got ${error.code} (${error.message})`);
    return;
  }
  assert.fail(`${what}: expected FsError ${code}, but it succeeded with ${JSON.stringify(outcome)}`);
}

async function withVolume(
  run: (volume: Volume, device: BlockDevice) => Promise<void>,
  blocks = 4096,
): Promise<void> {
  const device = keepOpen(new MemoryBlockDevice(blocks));
  await mkfs(device);
  const volume = await mount(device, { txgIntervalMs: 0 });
  try {
    await run(volume, device);
  } finally {
    await volume.unmount().catch(() => {});
  }
}

async function file(volume: Volume, dir: NodeRef, name: string, cred: Credentials = ROOT): Promise<NodeRef> {
  return (await volume.create(cred, dir, name, GUARDED)).ref;
}

async function dir(
  volume: Volume,
  parent: NodeRef,
  name: string,
  mode?: number,
  cred = ROOT,
): Promise<NodeRef> {
  return (await volume.mkdir(cred, parent, name, mode === undefined ? {} : { mode })).ref;
}

const LONG_NAME = "n".repeat(256);
const BAD_NAMES: Array<[string, string, FsErrorCode]> = [
  ["empty", "", "INVAL"],
  ["256 bytes", LONG_NAME, "NAMETOOLONG"],
  ["256 bytes of two-byte characters", "é".repeat(128), "NAMETOOLONG"],
  ["with a slash", "a/b", "INVAL"],
  ["with NUL", "a\0b", "INVAL"],
];

describe("names", () => {
  test("every operation that takes a name refuses bad names", async () => {
    await withVolume(async (v) => {
      const root = v.rootRef;
      const f = await file(v, root, "f");
      await dir(v, root, "d");
      for (const [label, name, code] of BAD_NAMES) {
        await rejectsWith(v.lookup(ROOT, root, name), code, `lookup of a name ${label}`);
        await rejectsWith(v.create(ROOT, root, name, GUARDED), code, `create of a name ${label}`);
        await rejectsWith(v.mkdir(ROOT, root, name, {}), code, `mkdir of a name ${label}`);
        await rejectsWith(v.symlink(ROOT, root, name, "t", {}), code, `symlink of a name ${label}`);
        await rejectsWith(v.mknod(ROOT, root, name, "fifo", {}), code, `mknod of a name ${label}`);
        await rejectsWith(v.link(ROOT, f, root, name), code, `link of a name ${label}`);
        await rejectsWith(v.remove(ROOT, root, name), code, `remove of a name ${label}`);
        await rejectsWith(v.rmdir(ROOT, root, name), code, `rmdir of a name ${label}`);
        await rejectsWith(v.rename(ROOT, root, name, root, "x"), code, `rename from a name ${label}`);
        await rejectsWith(v.rename(ROOT, root, "f", root, name), code, `rename to a name ${label}`);
      }
    });
  });

  test("names of exactly 255 bytes work, in ASCII and in multi-byte UTF-8", async () => {
    await withVolume(async (v) => {
      for (const name of ["n".repeat(255), `${"é".repeat(127)}a`]) {
        const made = await file(v, v.rootRef, name);
        const found = await v.lookup(ROOT, v.rootRef, name);
        assert.deepEqual(found.ref, made, `lookup of a ${Buffer.byteLength(name)}-byte name`);
      }
    });
  });

  test("'.' and '..' are EXIST as new names and INVAL as names to remove or rename", async () => {
    await withVolume(async (v) => {
      const root = v.rootRef;
      const f = await file(v, root, "f");
      for (const name of [".", ".."]) {
        await rejectsWith(v.create(ROOT, root, name, GUARDED), "EXIST", `create "${name}"`);
        await rejectsWith(
          v.create(ROOT, root, name, { kind: "unchecked", attrs: {} }),
          "EXIST",
          `unchecked "${name}"`,
        );
        await rejectsWith(v.mkdir(ROOT, root, name, {}), "EXIST", `mkdir "${name}"`);
        await rejectsWith(v.symlink(ROOT, root, name, "t", {}), "EXIST", `symlink "${name}"`);
        await rejectsWith(v.mknod(ROOT, root, name, "fifo", {}), "EXIST", `mknod "${name}"`);
        await rejectsWith(v.link(ROOT, f, root, name), "EXIST", `link "${name}"`);
        await rejectsWith(v.remove(ROOT, root, name), "INVAL", `remove "${name}"`);
        await rejectsWith(v.rmdir(ROOT, root, name), "INVAL", `rmdir "${name}"`);
        await rejectsWith(v.rename(ROOT, root, name, root, "x"), "INVAL", `rename from "${name}"`);
        await rejectsWith(v.rename(ROOT, root, "f", root, name), "INVAL", `rename to "${name}"`);
      }
    });
  });

  test("lookup resolves '.' to the directory and '..' to its parent; the root's parent is the root", async () => {
    await withVolume(async (v) => {
      const d = await dir(v, v.rootRef, "d");
      assert.deepEqual((await v.lookup(ROOT, d, ".")).ref, d, "d/.");
      assert.deepEqual((await v.lookup(ROOT, d, "..")).ref, v.rootRef, "d/..");
      assert.deepEqual((await v.lookup(ROOT, v.rootRef, "..")).ref, v.rootRef, "/..");
      assert.deepEqual((await v.lookup(ROOT, v.rootRef, ".")).ref, v.rootRef, "/.");
      await rejectsWith(v.lookup(ROOT, d, "missing"), "NOENT", "lookup of a missing name");
    });
  });

  test("symlink targets: empty is INVAL, over 1024 bytes NAMETOOLONG, 1024 bytes fine", async () => {
    await withVolume(async (v) => {
      await rejectsWith(v.symlink(ROOT, v.rootRef, "l", "", {}), "INVAL", "empty target");
      await rejectsWith(
        v.symlink(ROOT, v.rootRef, "l", "t".repeat(1025), {}),
        "NAMETOOLONG",
        "1025-byte target",
      );
      const made = await v.symlink(ROOT, v.rootRef, "l", "t".repeat(1024), {});
      assert.equal((await v.readlink(ROOT, made.ref)).target, "t".repeat(1024));
    });
  });
});

describe("wrong object types", () => {
  test("each operation names the type problem", async () => {
    await withVolume(async (v) => {
      const root = v.rootRef;
      const f = await file(v, root, "f");
      const d = await dir(v, root, "d");
      await file(v, d, "inside");
      const l = (await v.symlink(ROOT, root, "l", "f", {})).ref;
      const fifo = (await v.mknod(ROOT, root, "p", "fifo", {})).ref;
      await rejectsWith(v.read(ROOT, d, 0, 10), "ISDIR", "read of a directory");
      await rejectsWith(v.read(ROOT, l, 0, 10), "INVAL", "read of a symlink");
      await rejectsWith(v.write(ROOT, d, 0, new Uint8Array(1), "unstable"), "ISDIR", "write to a directory");
      await rejectsWith(v.write(ROOT, fifo, 0, new Uint8Array(1), "unstable"), "INVAL", "write to a fifo");
      await rejectsWith(v.readlink(ROOT, f), "INVAL", "readlink of a file");
      await rejectsWith(v.readlink(ROOT, d), "INVAL", "readlink of a directory");
      await rejectsWith(v.rmdir(ROOT, root, "f"), "NOTDIR", "rmdir of a file");
      await rejectsWith(v.remove(ROOT, root, "d"), "ISDIR", "remove of a directory");
      await rejectsWith(v.rmdir(ROOT, root, "d"), "NOTEMPTY", "rmdir of a non-empty directory");
      await rejectsWith(v.lookup(ROOT, f, "x"), "NOTDIR", "lookup in a file");
      await rejectsWith(v.create(ROOT, f, "x", GUARDED), "NOTDIR", "create in a file");
      await rejectsWith(v.mkdir(ROOT, l, "x", {}), "NOTDIR", "mkdir in a symlink");
      await rejectsWith(v.readdir(ROOT, f, 0, 0n, 10), "NOTDIR", "readdir of a file");
      await rejectsWith(v.remove(ROOT, f, "x"), "NOTDIR", "remove in a file");
      await rejectsWith(v.link(ROOT, d, root, "x"), "ISDIR", "hard link to a directory");
      await rejectsWith(v.link(ROOT, f, f, "x"), "NOTDIR", "hard link into a file");
      await rejectsWith(v.rename(ROOT, f, "x", root, "y"), "NOTDIR", "rename from a file as directory");
      await rejectsWith(v.rename(ROOT, root, "f", f, "y"), "NOTDIR", "rename into a file as directory");
      await rejectsWith(v.setattr(ROOT, d, { size: 0 }), "ISDIR", "size of a directory");
      await rejectsWith(v.setattr(ROOT, l, { size: 0 }), "INVAL", "size of a symlink");
      await rejectsWith(v.setattr(ROOT, fifo, { size: 0 }), "INVAL", "size of a fifo");
      await rejectsWith(
        v.create(ROOT, root, "d", { kind: "unchecked", attrs: {} }),
        "EXIST",
        "unchecked create over a dir",
      );
      await rejectsWith(v.mkdir(ROOT, root, "f", {}), "EXIST", "mkdir over a file");
    });
  });

  test("rename refuses type mismatches, non-empty targets and moving a directory into itself", async () => {
    await withVolume(async (v) => {
      const root = v.rootRef;
      await file(v, root, "f");
      const d = await dir(v, root, "d");
      const sub = await dir(v, d, "sub");
      const full = await dir(v, root, "full");
      await file(v, full, "x");
      await dir(v, root, "empty");
      await rejectsWith(v.rename(ROOT, root, "d", root, "f"), "NOTDIR", "directory over a file");
      await rejectsWith(v.rename(ROOT, root, "f", root, "empty"), "ISDIR", "file over a directory");
      await rejectsWith(
        v.rename(ROOT, root, "d", root, "full"),
        "NOTEMPTY",
        "directory over a non-empty one",
      );
      await rejectsWith(v.rename(ROOT, root, "d", d, "x"), "INVAL", "directory into itself");
      await rejectsWith(v.rename(ROOT, root, "d", sub, "x"), "INVAL", "directory below itself");
      await rejectsWith(v.rename(ROOT, root, "missing", root, "x"), "NOENT", "missing source");
      await v.rename(ROOT, root, "d", root, "empty");
      await rejectsWith(v.lookup(ROOT, root, "d"), "NOENT", "the old name after a rename");
      assert.deepEqual((await v.lookup(ROOT, root, "empty")).ref, d, "the replacing directory");
    });
  });
});

describe("offsets and sizes", () => {
  test("read and write refuse offsets and counts that are not non-negative safe integers", async () => {
    await withVolume(async (v) => {
      const f = await file(v, v.rootRef, "f");
      const one = new Uint8Array([1]);
      for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]) {
        await rejectsWith(v.read(ROOT, f, bad, 10), "INVAL", `read at offset ${bad}`);
        await rejectsWith(v.read(ROOT, f, 0, bad), "INVAL", `read of count ${bad}`);
        await rejectsWith(v.write(ROOT, f, bad, one, "unstable"), "INVAL", `write at offset ${bad}`);
      }
      await rejectsWith(v.setattr(ROOT, f, { size: -1 }), "INVAL", "size -1");
      await rejectsWith(v.setattr(ROOT, f, { size: 1.5 }), "INVAL", "size 1.5");
      await rejectsWith(v.setattr(ROOT, f, { size: Number.NaN }), "INVAL", "size NaN");
      assert.equal((await v.getattr(f)).size, 0, "nothing changed the file");
    });
  });

  test("the file size bound is 2^43 bytes: up to it works, beyond is FBIG", async () => {
    await withVolume(async (v) => {
      const f = await file(v, v.rootRef, "f");
      const two = new Uint8Array([7, 8]);
      await rejectsWith(
        v.write(ROOT, f, FILE_BYTES_MAX - 1, two, "unstable"),
        "FBIG",
        "write across the bound",
      );
      await rejectsWith(v.write(ROOT, f, FILE_BYTES_MAX, two, "unstable"), "FBIG", "write at the bound");
      await rejectsWith(v.setattr(ROOT, f, { size: FILE_BYTES_MAX + 1 }), "FBIG", "size beyond the bound");
      await rejectsWith(
        v.create(ROOT, v.rootRef, "g", { kind: "guarded", attrs: { size: FILE_BYTES_MAX + 1 } }),
        "FBIG",
        "create with a size beyond the bound",
      );
      const written = await v.write(ROOT, f, FILE_BYTES_MAX - 2, two, "unstable");
      assert.equal(written.wcc.after.size, FILE_BYTES_MAX, "size after writing the last two bytes");
      const tail = await v.read(ROOT, f, FILE_BYTES_MAX - 3, 10);
      assert.deepEqual([...tail.data], [0, 7, 8], "a hole, then the bytes written");
      assert.equal(tail.eof, true);
      await v.setattr(ROOT, f, { size: 10 });
      assert.equal((await v.getattr(f)).size, 10, "size after truncating from 8 TiB");
    });
  });

  test("reads past the end return no data and eof; a read over 4 MiB is cut to 4 MiB", async () => {
    await withVolume(async (v) => {
      const f = await file(v, v.rootRef, "f");
      await v.setattr(ROOT, f, { size: 5 * 2 ** 20 });
      const far = await v.read(ROOT, f, 2 ** 50, 10);
      assert.equal(far.data.length, 0, "no data past the end");
      assert.equal(far.eof, true, "eof past the end");
      const big = await v.read(ROOT, f, 0, 5 * 2 ** 20);
      assert.equal(big.data.length, 4 * 2 ** 20, "short read of 4 MiB");
      assert.equal(big.eof, false, "not at the end yet");
      const empty = await v.write(ROOT, f, 2 ** 40, new Uint8Array(0), "unstable");
      assert.equal(empty.count, 0);
      assert.equal((await v.getattr(f)).size, 5 * 2 ** 20, "a zero-byte write changes nothing");
    });
  });
});

describe("stale handles", () => {
  test("deleted objects, wrong generations and inodes that never existed are STALE everywhere", async () => {
    await withVolume(async (v) => {
      const root = v.rootRef;
      const gone = await file(v, root, "gone");
      const goneDir = await dir(v, root, "goneDir");
      await v.remove(ROOT, root, "gone");
      await v.rmdir(ROOT, root, "goneDir");
      const wrongGen = { ino: root.ino, gen: root.gen + 1 };
      const never = { ino: 987_654_321, gen: 1 };
      for (const [label, ref] of [
        ["deleted file", gone],
        ["deleted directory", goneDir],
        ["wrong generation", wrongGen],
        ["never-existing inode", never],
      ] as const) {
        await rejectsWith(v.getattr(ref), "STALE", `getattr of a ${label}`);
        await rejectsWith(v.setattr(ROOT, ref, { mode: 0o600 }), "STALE", `setattr of a ${label}`);
        await rejectsWith(v.access(ROOT, ref, 0x3f), "STALE", `access of a ${label}`);
        await rejectsWith(v.read(ROOT, ref, 0, 1), "STALE", `read of a ${label}`);
        await rejectsWith(
          v.write(ROOT, ref, 0, new Uint8Array(1), "unstable"),
          "STALE",
          `write of a ${label}`,
        );
        await rejectsWith(v.readlink(ROOT, ref), "STALE", `readlink of a ${label}`);
        await rejectsWith(v.lookup(ROOT, ref, "x"), "STALE", `lookup in a ${label}`);
        await rejectsWith(v.readdir(ROOT, ref, 0, 0n, 10), "STALE", `readdir of a ${label}`);
        await rejectsWith(v.create(ROOT, ref, "x", GUARDED), "STALE", `create in a ${label}`);
        await rejectsWith(v.remove(ROOT, ref, "x"), "STALE", `remove in a ${label}`);
        await rejectsWith(v.link(ROOT, ref, root, "x"), "STALE", `link of a ${label}`);
        await rejectsWith(v.link(ROOT, gone, ref, "x"), "STALE", `link into a ${label}`);
        await rejectsWith(v.rename(ROOT, ref, "x", root, "y"), "STALE", `rename from a ${label}`);
        await rejectsWith(v.rename(ROOT, root, "x", ref, "y"), "STALE", `rename into a ${label}`);
      }
    });
  });

  test("handle checks come first, in argument order", async () => {
    await withVolume(async (v) => {
      const f = await file(v, v.rootRef, "f");
      const never = { ino: 987_654_321, gen: 1 };
      // The first directory is not a directory, but the second handle is stale: STALE wins.
      await rejectsWith(v.rename(ROOT, f, "x", never, "y"), "STALE", "rename from a file into a stale dir");
      await rejectsWith(v.link(ROOT, never, f, "x"), "STALE", "link of a stale object into a file");
      await rejectsWith(v.lookup(ROOT, never, ""), "STALE", "lookup of a bad name in a stale dir");
    });
  });

  test("a handle stays valid across a remount, and a deleted one stays STALE", async () => {
    const device = keepOpen(new MemoryBlockDevice(4096));
    await mkfs(device);
    let v = await mount(device, { txgIntervalMs: 0 });
    const kept = await file(v, v.rootRef, "kept");
    const gone = await file(v, v.rootRef, "gone");
    await v.remove(ROOT, v.rootRef, "gone");
    await v.unmount();
    v = await mount(device, { txgIntervalMs: 0 });
    try {
      assert.equal((await v.getattr(kept)).type, "reg", "the kept file's handle after a remount");
      await rejectsWith(v.getattr(gone), "STALE", "the deleted file's handle after a remount");
    } finally {
      await v.unmount();
    }
  });
});

describe("readdir", () => {
  test("a cookie with an old verifier is BAD_COOKIE; with the current one it resumes", async () => {
    await withVolume(async (v) => {
      const d = await dir(v, v.rootRef, "d");
      for (const name of ["a", "b", "c", "d"]) await file(v, d, name);
      const first = await v.readdir(ROOT, d, 0, 0n, 2);
      assert.deepEqual(
        first.entries.map((e) => e.name),
        ["a", "b"],
        "first page, in creation order",
      );
      const cookie = first.entries.at(-1)!.cookie;
      const second = await v.readdir(ROOT, d, cookie, first.verifier, 10);
      assert.deepEqual(
        second.entries.map((e) => e.name),
        ["c", "d"],
        "resumed page",
      );
      assert.equal(second.eof, true);
      await file(v, d, "e");
      await rejectsWith(
        v.readdir(ROOT, d, cookie, first.verifier, 10),
        "BAD_COOKIE",
        "cookie after a change",
      );
      await rejectsWith(
        v.readdir(ROOT, d, cookie, first.verifier ^ 1n, 10),
        "BAD_COOKIE",
        "made-up verifier",
      );
    });
  });

  test("a zero verifier is accepted with any cookie, even after the directory changed", async () => {
    await withVolume(async (v) => {
      const d = await dir(v, v.rootRef, "d");
      for (const name of ["a", "b", "c"]) await file(v, d, name);
      const first = await v.readdir(ROOT, d, 0, 0n, 1);
      await file(v, d, "e");
      const rest = await v.readdir(ROOT, d, first.entries[0]!.cookie, 0n, 10);
      assert.deepEqual(
        rest.entries.map((e) => e.name),
        ["b", "c", "e"],
        "entries after the cookie's position",
      );
    });
  });

  test("maxEntries below 1 is INVAL", async () => {
    await withVolume(async (v) => {
      await rejectsWith(v.readdir(ROOT, v.rootRef, 0, 0n, 0), "INVAL", "maxEntries 0");
      await rejectsWith(v.readdir(ROOT, v.rootRef, 0, 0n, -3), "INVAL", "maxEntries -3");
    });
  });
});

describe("permissions", () => {
  test("directory permissions: search for lookup, write and search for changes, read for readdir", async () => {
    await withVolume(async (v) => {
      const root = v.rootRef;
      const locked = await dir(v, root, "locked", 0o700);
      await file(v, locked, "f");
      const shared = await dir(v, root, "shared", 0o755);
      await file(v, shared, "f");
      await rejectsWith(v.create(ALICE, root, "x", GUARDED), "ACCES", "create in root's 0755 root");
      await rejectsWith(v.lookup(ALICE, locked, "f"), "ACCES", "lookup in a 0700 dir of root's");
      await rejectsWith(v.readdir(ALICE, locked, 0, 0n, 10), "ACCES", "readdir of a 0700 dir of root's");
      await rejectsWith(v.remove(ALICE, shared, "f"), "ACCES", "remove in a 0755 dir of root's");
      await rejectsWith(v.rename(ALICE, shared, "f", shared, "g"), "ACCES", "rename in a 0755 dir of root's");
      await rejectsWith(v.mkdir(ALICE, shared, "x", {}), "ACCES", "mkdir in a 0755 dir of root's");
      await rejectsWith(v.link(ALICE, (await v.lookup(ROOT, shared, "f")).ref, shared, "x"), "ACCES", "link");
      assert.equal((await v.lookup(ALICE, shared, "f")).attr.type, "reg", "lookup with search permission");
    });
  });

  test("file permissions: owner, group (also supplementary), other; root reads and writes anything", async () => {
    await withVolume(async (v) => {
      const tmp = await dir(v, v.rootRef, "tmp", 0o777);
      const mine = await v.create(ALICE, tmp, "mine", { kind: "guarded", attrs: { mode: 0o640 } });
      assert.equal(mine.attr.uid, ALICE.uid);
      assert.equal(mine.attr.gid, ALICE.gid);
      const data = new Uint8Array([1, 2, 3]);
      await v.write(ALICE, mine.ref, 0, data, "unstable");
      assert.equal((await v.read(BOB, mine.ref, 0, 3)).data.length, 3, "Bob reads through group 1000");
      await rejectsWith(v.write(BOB, mine.ref, 0, data, "unstable"), "ACCES", "Bob writes a 0640 file");
      await v.setattr(ALICE, mine.ref, { mode: 0o604, gid: 100 });
      await rejectsWith(
        v.read(BOB, mine.ref, 0, 3),
        "ACCES",
        "Bob (group 100) reads a 0604 file of group 100",
      );
      await v.setattr(ALICE, mine.ref, { mode: 0o000 });
      await rejectsWith(v.read(ALICE, mine.ref, 0, 3), "ACCES", "the owner reads a 0000 file");
      await rejectsWith(v.setattr(ALICE, mine.ref, { size: 0 }), "ACCES", "the owner truncates a 0000 file");
      assert.equal((await v.read(ROOT, mine.ref, 0, 3)).data.length, 3, "root reads a 0000 file");
      await v.write(ROOT, mine.ref, 0, data, "unstable");
    });
  });

  test("setattr: mode by owner or root, uid by root, gid to one's own groups; else PERM", async () => {
    await withVolume(async (v) => {
      const tmp = await dir(v, v.rootRef, "tmp", 0o777);
      const rootFile = await file(v, tmp, "root-file");
      const mine = await file(v, tmp, "mine", ALICE);
      await rejectsWith(v.setattr(ALICE, rootFile, { mode: 0o777 }), "PERM", "chmod of root's file");
      await rejectsWith(v.setattr(ALICE, mine, { uid: BOB.uid }), "PERM", "giving a file away");
      await rejectsWith(v.setattr(ALICE, mine, { gid: BOB.gid }), "PERM", "chgrp to a foreign group");
      await rejectsWith(v.setattr(BOB, mine, { gid: 100 }), "PERM", "chgrp of someone else's file");
      await rejectsWith(
        v.setattr(BOB, mine, { mtime: { sec: 5, nsec: 0 } }),
        "PERM",
        "explicit mtime, not owner",
      );
      await rejectsWith(v.setattr(BOB, rootFile, { mtime: "server" }), "ACCES", "server mtime without write");
      await v.setattr(ALICE, mine, { uid: ALICE.uid });
      await v.setattr(ALICE, mine, { mode: 0o6755 });
      const after = await v.setattr(ALICE, mine, { gid: 100 });
      assert.equal(after.after.gid, 100, "chgrp to a supplementary group");
      assert.equal(after.after.mode, 0o755, "a non-root group change clears setuid and setgid");
      const byRoot = await v.setattr(ROOT, mine, { uid: BOB.uid, mode: 0o17777 });
      assert.equal(byRoot.after.uid, BOB.uid);
      assert.equal(byRoot.after.mode, 0o7777, "only bits 07777 are kept");
    });
  });

  test("setattr gid by someone other than the owner is PERM, even to the group it already has", async () => {
    await withVolume(async (v) => {
      const tmp = await dir(v, v.rootRef, "tmp", 0o777);
      const mine = await file(v, tmp, "mine", ALICE);
      // Bob is in group 1000 (Alice's), so only the owner rule can refuse him.
      await rejectsWith(
        v.setattr(BOB, mine, { gid: ALICE.gid }),
        "PERM",
        "Bob sets Alice's file to its own group",
      );
      await rejectsWith(
        v.setattr(ALICE, v.rootRef, { gid: 0 }),
        "PERM",
        "Alice sets root's directory to group 0",
      );
    });
  });

  test("setattr with a ctime guard that does not match is NOT_SYNC and changes nothing", async () => {
    await withVolume(async (v) => {
      const f = await file(v, v.rootRef, "f");
      const { ctime } = await v.getattr(f);
      await rejectsWith(
        v.setattr(ROOT, f, { mode: 0o600 }, { sec: ctime.sec - 1, nsec: ctime.nsec }),
        "NOT_SYNC",
        "stale guard",
      );
      assert.equal((await v.getattr(f)).mode, 0o644, "mode unchanged");
      await v.setattr(ROOT, f, { mode: 0o600 }, ctime);
      assert.equal((await v.getattr(f)).mode, 0o600, "mode changed with a matching guard");
    });
  });

  test("sticky directories: only the entry's owner, the directory's owner or root remove or replace", async () => {
    await withVolume(async (v) => {
      const tmp = await dir(v, v.rootRef, "tmp", 0o1777);
      await file(v, tmp, "alices", ALICE);
      await file(v, tmp, "bobs", BOB);
      await rejectsWith(v.remove(BOB, tmp, "alices"), "PERM", "Bob removes Alice's file");
      await rejectsWith(v.rename(BOB, tmp, "alices", tmp, "x"), "PERM", "Bob renames Alice's file");
      await rejectsWith(v.rename(BOB, tmp, "bobs", tmp, "alices"), "PERM", "Bob replaces Alice's file");
      await v.mkdir(ALICE, tmp, "alicedir", {});
      await rejectsWith(v.rmdir(BOB, tmp, "alicedir"), "PERM", "Bob removes Alice's directory");
      await v.rename(BOB, tmp, "bobs", tmp, "bobs2");
      await v.remove(ALICE, tmp, "alices");
      await v.rmdir(ROOT, tmp, "alicedir");
      await v.remove(ROOT, tmp, "bobs2");
    });
  });

  test("device nodes need root; fifos and sockets do not", async () => {
    await withVolume(async (v) => {
      const tmp = await dir(v, v.rootRef, "tmp", 0o777);
      await rejectsWith(v.mknod(ALICE, tmp, "c", "chr", {}, { major: 1, minor: 3 }), "PERM", "chr by Alice");
      await rejectsWith(v.mknod(ALICE, tmp, "b", "blk", {}, { major: 8, minor: 0 }), "PERM", "blk by Alice");
      await v.mknod(ALICE, tmp, "p", "fifo", {});
      const dev = await v.mknod(ROOT, tmp, "c", "chr", {}, { major: 1, minor: 3 });
      assert.deepEqual(dev.attr.rdev, { major: 1, minor: 3 });
    });
  });

  test("setgid directories hand their group down; new subdirectories are setgid too", async () => {
    await withVolume(async (v) => {
      const shared = await v.mkdir(ROOT, v.rootRef, "shared", { mode: 0o2777, gid: 100 });
      assert.equal(shared.attr.gid, 100);
      const f = await v.create(BOB, shared.ref, "f", GUARDED);
      assert.equal(f.attr.gid, 100, "a file inherits the directory's group");
      const sub = await v.mkdir(BOB, shared.ref, "sub", { mode: 0o755 });
      assert.equal(sub.attr.gid, 100, "a subdirectory inherits the group");
      assert.equal(sub.attr.mode, 0o2755, "and is setgid");
      const ignored = await v.create(ALICE, shared.ref, "g", { kind: "guarded", attrs: { uid: 0, gid: 0 } });
      assert.equal(ignored.attr.uid, ALICE.uid, "attrs.uid is ignored for non-root");
      assert.equal(ignored.attr.gid, 100, "attrs.gid is ignored for non-root");
    });
  });
});

describe("creates", () => {
  test("exclusive create: a retry with the same verifier succeeds, another verifier is EXIST", async () => {
    await withVolume(async (v) => {
      const verifier = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
      const first = await v.create(ROOT, v.rootRef, "x", { kind: "exclusive", verifier });
      const retry = await v.create(ROOT, v.rootRef, "x", { kind: "exclusive", verifier: verifier.slice() });
      assert.deepEqual(retry.ref, first.ref, "the retry finds the same file");
      const other = new Uint8Array([8, 7, 6, 5, 4, 3, 2, 1]);
      await rejectsWith(
        v.create(ROOT, v.rootRef, "x", { kind: "exclusive", verifier: other }),
        "EXIST",
        "other",
      );
      await rejectsWith(v.create(ROOT, v.rootRef, "x", GUARDED), "EXIST", "guarded over an existing file");
      await file(v, v.rootRef, "plain");
      await rejectsWith(
        v.create(ROOT, v.rootRef, "plain", { kind: "exclusive", verifier }),
        "EXIST",
        "plain",
      );
      const unchecked = await v.create(ROOT, v.rootRef, "x", { kind: "unchecked", attrs: { size: 3 } });
      assert.deepEqual(unchecked.ref, first.ref, "unchecked returns the existing file");
      assert.equal(unchecked.attr.size, 3, "with its size set");
    });
  });
});

describe("attributes", () => {
  test("directory size is 64 x (entries + 2); usedBytes counts mapped blocks, not holes", async () => {
    await withVolume(async (v) => {
      const d = await dir(v, v.rootRef, "d");
      assert.equal((await v.getattr(d)).size, 128, "an empty directory");
      for (const name of ["a", "b", "c"]) await file(v, d, name);
      assert.equal((await v.getattr(d)).size, 64 * 5, "three entries");
      const f = await file(v, v.rootRef, "f");
      await v.setattr(ROOT, f, { size: 10 * 4096 });
      assert.equal((await v.getattr(f)).usedBytes, 0, "a file that is all hole");
      await v.write(ROOT, f, 4096 * 3 + 100, new Uint8Array(4096), "unstable");
      assert.equal((await v.getattr(f)).usedBytes, 2 * 4096, "a write across one block boundary");
      await v.setattr(ROOT, f, { size: 4096 * 3 + 1 });
      assert.equal((await v.getattr(f)).usedBytes, 4096, "after truncating into the first written block");
    });
  });

  test("reads do not change atime; unchecked create changes size only with write permission", async () => {
    await withVolume(async (v) => {
      const tmp = await dir(v, v.rootRef, "tmp", 0o777);
      const f = await v.create(ROOT, tmp, "f", { kind: "guarded", attrs: { mode: 0o644 } });
      await v.write(ROOT, f.ref, 0, new Uint8Array(10), "unstable");
      const before = await v.getattr(f.ref);
      await v.read(ALICE, f.ref, 0, 10);
      assert.deepEqual((await v.getattr(f.ref)).atime, before.atime, "atime after a read");
      const unchanged = await v.create(ALICE, tmp, "f", { kind: "unchecked", attrs: { size: 10 } });
      assert.deepEqual(unchanged.ref, f.ref, "the same size needs no write permission");
      await rejectsWith(
        v.create(ALICE, tmp, "f", { kind: "unchecked", attrs: { size: 0 } }),
        "ACCES",
        "truncate",
      );
      assert.equal((await v.getattr(f.ref)).size, 10, "size unchanged after ACCES");
    });
  });
});

describe("a full volume", () => {
  test("answers NOSPC, stays consistent, and takes writes again once files are removed", async () => {
    const device = keepOpen(new MemoryBlockDevice(1024)); // 4 MiB
    await mkfs(device);
    let v = await mount(device, { txgIntervalMs: 0 });
    const chunk = new Uint8Array(64 * 1024).fill(0x5a);
    const files: string[] = [];
    let full: FsError | undefined;
    for (let i = 0; i < 200; i++) {
      const name = `f${i}`;
      try {
        const ref = await file(v, v.rootRef, name);
        files.push(name);
        for (let offset = 0; offset < 256 * 1024; offset += chunk.length) {
          await v.write(ROOT, ref, offset, chunk, "unstable");
        }
      } catch (error) {
        assert.ok(error instanceof FsError, `expected FsError NOSPC, got ${String(error)}`);
        full = error;
        break;
      }
    }
    assert.equal(full?.code, "NOSPC", "filling 4 MiB with 50 MiB of writes ends in NOSPC");
    await v.commit();
    await v.unmount();
    const report = await fsck(device, { repair: false });
    assert.deepEqual(
      report.problems.map((p) => p.message),
      [],
      "fsck after filling the volume",
    );
    v = await mount(device, { txgIntervalMs: 0 });
    try {
      const freeBefore = (await v.fsstat()).freeBytes;
      for (const name of files.slice(0, Math.ceil(files.length / 2))) await v.remove(ROOT, v.rootRef, name);
      await v.commit();
      const freeAfter = (await v.fsstat()).freeBytes;
      assert.ok(freeAfter > freeBefore + 256 * 1024, `free bytes grew from ${freeBefore} to ${freeAfter}`);
      const again = await file(v, v.rootRef, "again");
      for (let offset = 0; offset < 256 * 1024; offset += chunk.length) {
        await v.write(ROOT, again, offset, chunk, "unstable");
      }
      await v.commit();
      assert.equal((await v.getattr(again)).size, 256 * 1024);
    } finally {
      await v.unmount();
    }
    const final = await fsck(device, { repair: false });
    assert.deepEqual(
      final.problems.map((p) => p.message),
      [],
      "fsck after freeing space and writing again",
    );
  });
});
