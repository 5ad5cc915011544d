import assert from "node:assert/strict";
import { test } from "node:test";
import { FsError } from "../../../src/fs/index.ts";
import { FILE_HANDLE_BYTES, FileHandleCodec } from "../../../src/nfs/file-handle.ts";
import { NFS3_FHSIZE } from "../../../src/nfs/nfs3.ts";

const key = (fill: number) => new Uint8Array(32).fill(fill);
const target = { vserverId: 7, volumeId: 9, ref: { ino: 2 ** 40 + 5, gen: 0x7fff_fffe } };
const isBadHandle = (e: unknown) => e instanceof FsError && e.code === "BADHANDLE";

test("a handle fits NFS's 64 bytes and decodes to what it names", () => {
  const codec = new FileHandleCodec(key(1));
  const handle = codec.encode(target);
  assert.ok(handle.length <= NFS3_FHSIZE);
  assert.equal(handle.length, FILE_HANDLE_BYTES);
  assert.deepEqual(codec.decode(handle), target);
});

test("every single-bit change of a handle is refused as BADHANDLE", () => {
  const codec = new FileHandleCodec(key(1));
  const handle = codec.encode(target);
  for (let bit = 0; bit < handle.length * 8; bit++) {
    const altered = handle.slice();
    altered[bit >> 3]! ^= 1 << (bit & 7);
    assert.throws(() => codec.decode(altered), isBadHandle, `bit ${bit}`);
  }
});

test("a handle made under another vserver's key is BADHANDLE; so are wrong lengths", () => {
  const other = new FileHandleCodec(key(2)).encode(target);
  const codec = new FileHandleCodec(key(1));
  assert.throws(() => codec.decode(other), isBadHandle);
  assert.throws(() => codec.decode(new Uint8Array(0)), isBadHandle);
  assert.throws(() => codec.decode(new Uint8Array(64)), isBadHandle);
});

test("a handle verified once (and so remembered) is still refused when any bit of it changes", () => {
  const codec = new FileHandleCodec(key(1));
  const handles = Array.from({ length: 5000 }, (_, i) =>
    codec.encode({ ...target, ref: { ino: i + 2, gen: 1 } }),
  );
  // More handles than the codec remembers: the oldest are forgotten and verified again.
  for (const h of handles) codec.decode(h);
  for (const h of [handles[0]!, handles[4999]!]) {
    assert.equal(codec.decode(h).ref.gen, 1);
    for (let bit = 0; bit < h.length * 8; bit += 7) {
      const altered = h.slice();
      altered[bit >> 3]! ^= 1 << (bit & 7);
      assert.throws(() => codec.decode(altered), isBadHandle, `bit ${bit}`);
    }
  }
  const other = new FileHandleCodec(key(2));
  assert.throws(() => other.decode(handles[4999]!), isBadHandle, "another vserver's key");
});
