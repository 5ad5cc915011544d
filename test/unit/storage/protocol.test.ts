import assert from "node:assert/strict";
import { test } from "node:test";
import { blockChecksums } from "../../../src/storage/chunk-format.ts";
import {
  CODECS,
  decodeReplyBody,
  encodeFailure,
  MESSAGE_BYTES_MAX,
  type ProcCodec,
  readStatus,
  StorageProc,
  type StorageProcName,
  type StorageProcTypes,
  WireStatus,
} from "../../../src/storage/protocol.ts";
import { StorageError, type StorageErrorCode } from "../../../src/storage/types.ts";
import { SeededRandom } from "../../../src/util/random.ts";
import { XdrError, XdrReader, XdrWriter } from "../../../src/xdr/index.ts";

const random = new SeededRandom(7);
const chunk = { volumeId: "vol-1", chunkIndex: 0xffffffff };
const data = random.bytes(3 * 4096);

/** One sample of every procedure's arguments and results. */
const SAMPLES: { readonly [P in StorageProcName]: StorageProcTypes[P] } = {
  NULL: { args: undefined, result: undefined },
  HELLO: {
    args: { clientNonce: random.bytes(32) },
    result: { serverId: "s-1", serverNonce: random.bytes(32), serverProof: random.bytes(32) },
  },
  PROVE: { args: { clientProof: random.bytes(32) }, result: undefined },
  CREATE_CHUNK: { args: { chunk, ownerEpoch: 2 ** 53 - 1 }, result: undefined },
  READ: {
    args: { chunk, ownerEpoch: 7, blockOffset: 4096 - 256, blockCount: 256 },
    result: { data, checksums: blockChecksums(data) },
  },
  WRITE: {
    args: { chunk, ownerEpoch: 7, blockOffset: 4093, data, checksums: blockChecksums(data) },
    result: undefined,
  },
  FLUSH: { args: { volumeId: "v", ownerEpoch: 1 }, result: undefined },
  FENCE: { args: { volumeId: "v", ownerEpoch: 9 }, result: undefined },
  OWNER_EPOCH: { args: { volumeId: "a".repeat(63) }, result: 12345678901 },
  BEGIN_FILL: { args: { chunk, generation: 3 }, result: undefined },
  COPY_FROM: {
    args: { chunk, generation: 3, sourceServerId: "s-2", blockOffset: 0, blockCount: 256 },
    result: 255,
  },
  END_FILL: { args: { chunk, generation: 3 }, result: undefined },
  CHECKSUMS: { args: { chunk, blockCount: 4096 }, result: new Uint32Array([1, 2, 0xffffffff]) },
  DROP_CHUNK: { args: { chunk }, result: undefined },
  STATS: {
    args: undefined,
    result: {
      serverId: "s-1",
      capacityBytes: 2 ** 50,
      usedBytes: 12345,
      chunkCount: 3,
      readBytes: 1,
      writtenBytes: 2,
      requestsInFlight: 4,
    },
  },
};

function join(chunks: readonly Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(chunks));
}

function decodeArgs<A>(codec: ProcCodec<A, unknown>, bytes: Uint8Array): A {
  return codec.decodeArgs(new XdrReader(bytes));
}

function invalid(error: unknown): boolean {
  assert.ok(error instanceof StorageError, `expected a StorageError, got ${String(error)}`);
  assert.equal(error.code, "INVALID");
  return true;
}

test("protocol: every procedure's arguments and results survive encoding and decoding", () => {
  for (const name of Object.keys(StorageProc) as StorageProcName[]) {
    const codec: ProcCodec<unknown, unknown> = CODECS[name];
    const sample = SAMPLES[name];
    assert.equal(codec.procedure, StorageProc[name], name);
    assert.deepEqual(
      decodeArgs(codec, join(codec.encodeArgs(sample.args))),
      sample.args,
      `${name} arguments`,
    );
    const reply = join(codec.encodeResult(sample.result));
    // NULL answers nothing at all, as every ONC RPC program's NULL does; every other reply has a status.
    if (name === "NULL") assert.equal(reply.length, 0);
    else assert.deepEqual(decodeReplyBody(codec, new XdrReader(reply)), sample.result, `${name} results`);
  }
});

test("protocol: every StorageErrorCode has its own wire status, and failures carry code, block and message", () => {
  const codes = Object.keys(WireStatus).filter((name) => name !== "OK") as StorageErrorCode[];
  assert.equal(new Set(Object.values(WireStatus)).size, codes.length + 1, "statuses are distinct");
  for (const code of codes) {
    const sent = new StorageError(
      code,
      `because ${code}`,
      code === "CHECKSUM" ? { blockIndex: 4095 } : undefined,
    );
    const body = join(encodeFailure(sent));
    assert.throws(
      () => readStatus(new XdrReader(body)),
      (error: unknown) => {
        assert.ok(error instanceof StorageError);
        assert.equal(error.code, code);
        assert.equal(error.message, `because ${code}`);
        assert.equal(error.blockIndex, code === "CHECKSUM" ? 4095 : undefined);
        return true;
      },
    );
  }
});

test("protocol: a failure's message is cut to its bound; an unknown status is malformed", () => {
  const body = join(encodeFailure(new StorageError("IO", "x".repeat(5000))));
  assert.throws(
    () => readStatus(new XdrReader(body)),
    (error: unknown) => error instanceof StorageError && error.message.length === MESSAGE_BYTES_MAX,
  );
  const unknown = new XdrWriter().u32(99).string("?").bytes();
  assert.throws(() => readStatus(new XdrReader(unknown)), XdrError);
});

test("protocol: out-of-range values are INVALID, on encoding and on decoding", () => {
  const read = SAMPLES.READ.args;
  const bad: { readonly [K in string]: typeof read } = {
    "volume id": { ...read, chunk: { volumeId: "Bad/Id", chunkIndex: 0 } },
    "chunk index": { ...read, chunk: { volumeId: "v", chunkIndex: 2 ** 32 } },
    "zero blocks": { ...read, blockCount: 0 },
    "too many blocks": { ...read, blockOffset: 0, blockCount: 257 },
    "beyond the chunk": { ...read, blockOffset: 4000, blockCount: 97 },
    "negative epoch": { ...read, ownerEpoch: -1 },
    "fractional epoch": { ...read, ownerEpoch: 1.5 },
  };
  for (const [what, args] of Object.entries(bad)) {
    assert.throws(() => CODECS.READ.encodeArgs(args), invalid, what);
  }
  // The same values, hand-encoded, are refused by the decoder with INVALID (not GARBAGE_ARGS).
  const handMade = (volumeId: string, offset: number, count: number) =>
    new XdrWriter().string(volumeId).u32(0).u64(1).u32(offset).u32(count).bytes();
  assert.throws(() => decodeArgs(CODECS.READ, handMade("Bad/Id", 0, 1)), invalid);
  assert.throws(() => decodeArgs(CODECS.READ, handMade("v", 4000, 97)), invalid);
  assert.throws(() => decodeArgs(CODECS.READ, handMade("v", 0, 0)), invalid);
  assert.throws(() => decodeArgs(CODECS.READ, handMade("v", 0xffffffff, 1)), invalid);
});

test("protocol: WRITE data must be whole blocks with one checksum each", () => {
  const args = SAMPLES.WRITE.args;
  assert.throws(() => CODECS.WRITE.encodeArgs({ ...args, data: data.subarray(0, 4000) }), invalid);
  assert.throws(() => CODECS.WRITE.encodeArgs({ ...args, checksums: args.checksums.subarray(1) }), invalid);
  assert.throws(() => CODECS.WRITE.encodeArgs({ ...args, blockOffset: 4094 }), invalid);
  assert.throws(
    () => CODECS.WRITE.encodeArgs({ ...args, data: new Uint8Array(0), checksums: new Uint32Array(0) }),
    invalid,
  );
  const handMade = (dataBytes: number, checksumCount: number) => {
    const w = new XdrWriter().string("v").u32(0).u64(1).u32(0).u32(checksumCount);
    for (let i = 0; i < checksumCount; i++) w.u32(0);
    return w.opaque(new Uint8Array(dataBytes)).bytes();
  };
  assert.throws(() => decodeArgs(CODECS.WRITE, handMade(4100, 1)), invalid);
  assert.throws(() => decodeArgs(CODECS.WRITE, handMade(8192, 1)), invalid);
  // Over the wire bounds: malformed, not merely invalid.
  assert.throws(() => decodeArgs(CODECS.WRITE, handMade(4096, 257)), XdrError);
  assert.throws(() => decodeArgs(CODECS.WRITE, handMade(257 * 4096, 1)), XdrError);
});

test("protocol: cut-short, over-long and trailing bytes are malformed (XdrError)", () => {
  for (const name of Object.keys(StorageProc) as StorageProcName[]) {
    const codec: ProcCodec<unknown, unknown> = CODECS[name];
    const bytes = join(codec.encodeArgs(SAMPLES[name].args));
    assert.throws(
      () => decodeArgs(codec, join([bytes, new Uint8Array(4)])),
      XdrError,
      `${name} trailing bytes`,
    );
    if (bytes.length > 0) {
      assert.throws(
        () => decodeArgs(codec, bytes.subarray(0, bytes.length - 4)),
        XdrError,
        `${name} cut short`,
      );
    }
  }
  const longId = new XdrWriter().string("a".repeat(64)).bytes();
  assert.throws(() => decodeArgs(CODECS.OWNER_EPOCH, longId), XdrError);
  const hugeEpoch = new XdrWriter().string("v").u32(0x00200000).u32(0).bytes();
  assert.throws(() => decodeArgs(CODECS.FENCE, hugeEpoch), XdrError);
});
