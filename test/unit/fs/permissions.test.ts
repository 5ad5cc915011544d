import assert from "node:assert/strict";
import { test } from "node:test";
import { FsError } from "../../../src/fs/errors.ts";
import {
  grantedAccess,
  type Owned,
  permittedBits,
  R_OK,
  requireStickyAllows,
  W_OK,
  X_OK,
} from "../../../src/fs/permissions.ts";
import { ACCESS } from "../../../src/fs/types.ts";

const file = (mode: number, uid = 100, gid = 200): Owned => ({ type: "reg", mode, uid, gid });
const dir = (mode: number, uid = 100, gid = 200): Owned => ({ type: "dir", mode, uid, gid });
const cred = (uid: number, gid: number, gids: number[] = []) => ({ uid, gid, gids });

test("exactly one class of bits applies: owner, else group (primary or supplementary), else other", () => {
  const f = file(0o640);
  assert.equal(permittedBits(f, cred(100, 1)), R_OK | W_OK);
  assert.equal(permittedBits(f, cred(101, 200)), R_OK);
  assert.equal(permittedBits(f, cred(101, 1, [7, 200])), R_OK);
  assert.equal(permittedBits(f, cred(101, 1)), 0);
  // The owner gets the owner bits even when the group or others would get more.
  assert.equal(permittedBits(file(0o077), cred(100, 200)), 0);
});

test("root reads and writes anything, but executes only what has an x bit (directories are always searchable)", () => {
  assert.equal(permittedBits(file(0o000), cred(0, 0)), R_OK | W_OK);
  assert.equal(permittedBits(file(0o001), cred(0, 0)), R_OK | W_OK | X_OK);
  assert.equal(permittedBits(dir(0o000), cred(0, 0)), R_OK | W_OK | X_OK);
});

test("a sticky directory lets only the entry's owner, the directory's owner or root remove the entry", () => {
  const sticky = dir(0o1777, 1);
  const entry = file(0o644, 100);
  assert.doesNotThrow(() => requireStickyAllows(sticky, entry, cred(100, 1), "x"));
  assert.doesNotThrow(() => requireStickyAllows(sticky, entry, cred(1, 1), "x"));
  assert.doesNotThrow(() => requireStickyAllows(sticky, entry, cred(0, 0), "x"));
  assert.throws(
    () => requireStickyAllows(sticky, entry, cred(5, 5), "x"),
    (e: unknown) => e instanceof FsError && e.code === "PERM",
  );
  assert.doesNotThrow(() => requireStickyAllows(dir(0o777, 1), entry, cred(5, 5), "x"));
});

test("NFS ACCESS bits follow the permission bits: lookup and delete for directories, execute for files", () => {
  const all = 0x3f;
  assert.equal(
    grantedAccess(dir(0o755), cred(100, 1), all),
    ACCESS.READ | ACCESS.LOOKUP | ACCESS.MODIFY | ACCESS.EXTEND | ACCESS.DELETE,
  );
  assert.equal(grantedAccess(dir(0o755), cred(5, 5), all), ACCESS.READ | ACCESS.LOOKUP);
  assert.equal(grantedAccess(file(0o755), cred(5, 5), all), ACCESS.READ | ACCESS.EXECUTE);
  assert.equal(
    grantedAccess(file(0o600), cred(100, 1), ACCESS.READ),
    ACCESS.READ,
    "only bits asked for are answered",
  );
});
