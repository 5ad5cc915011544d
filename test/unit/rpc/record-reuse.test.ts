// Large call records are reassembled into pooled buffers, and go back to the pool only when the
// handler says it keeps nothing of its arguments; a reused buffer never shows another call's bytes.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  encodeFragments,
  RecordDecoder,
  RpcClient,
  type RpcProgram,
  RpcServer,
  resultsOf,
} from "../../../src/rpc/index.ts";
import { POOLED_RECORD_BYTES_MIN, recordBuffers } from "../../../src/rpc/record-buffers.ts";
import { BufferPool } from "../../../src/util/buffer-pool.ts";
import { XdrWriter } from "../../../src/xdr/index.ts";

const PROGRAM = 0x2000_0003;
const ARG_BYTES = 1024 * 1024;

test("RecordDecoder: a large record made of several pieces is put in a pooled buffer, a small one is not", () => {
  const pool = new BufferPool(2 * ARG_BYTES, 4);
  const decoder = new RecordDecoder({ pool, pooledBytesMin: POOLED_RECORD_BYTES_MIN });
  const large = Uint8Array.from({ length: ARG_BYTES }, (_, i) => i & 0xff);
  const small = Uint8Array.from({ length: 1000 }, (_, i) => (i * 3) & 0xff);
  for (const [bytes, pooled] of [
    [large, true],
    [small, false],
  ] as const) {
    const stream = encodeFragments([bytes.subarray(0, 100), bytes.subarray(100)]);
    decoder.push(stream.subarray(0, 7));
    decoder.push(stream.subarray(7));
    const record = decoder.next();
    assert.ok(record !== undefined);
    assert.deepEqual(record, bytes);
    assert.equal(
      pool.lent(record),
      pooled,
      `a ${bytes.length}-byte record ${pooled ? "is" : "is not"} pooled`,
    );
  }
});

/** Procedure 1 sums its opaque argument's bytes, releasing the args when `release` says so. */
function summingProgram(release: () => boolean): RpcProgram {
  return {
    program: PROGRAM,
    version: 1,
    name: "sum",
    handler: (procedure) =>
      procedure !== 1
        ? undefined
        : async (call) => {
            const bytes = call.args.opaque(ARG_BYTES + 8, "bytes");
            let sum = 0;
            for (const b of bytes) sum = (sum + b) >>> 0;
            await new Promise((resolve) => setImmediate(resolve));
            if (release()) call.releaseArgs?.();
            return {
              kind: "success",
              body: [
                new XdrWriter()
                  .u32(sum)
                  .u32(bytes[0] ?? 0)
                  .bytes(),
              ],
            };
          },
  };
}

function callBytes(seed: number): Uint8Array {
  const bytes = Uint8Array.from({ length: ARG_BYTES }, (_, i) => (seed * 17 + i * 13) & 0xff);
  return new XdrWriter().u32(bytes.length).opaqueFixed(bytes).bytes();
}

function expectedSum(seed: number): number {
  let sum = 0;
  for (let i = 0; i < ARG_BYTES; i++) sum = (sum + ((seed * 17 + i * 13) & 0xff)) >>> 0;
  return sum;
}

test("server: records whose handler releases its args are reused, and every call sees its own bytes", async () => {
  let releasing = true;
  const server = new RpcServer({ programs: [summingProgram(() => releasing)], name: "sum" });
  const { port } = await server.listen("127.0.0.1", 0);
  try {
    await using client = await RpcClient.connect("127.0.0.1", port);
    for (let round = 0; round < 6; round++) {
      const seeds = Array.from({ length: 8 }, (_, i) => round * 8 + i);
      const replies = await Promise.all(seeds.map((seed) => client.call(PROGRAM, 1, 1, callBytes(seed))));
      replies.forEach((reply, i) => {
        const results = resultsOf(reply);
        assert.equal(results.u32(), expectedSum(seeds[i]!), `call ${seeds[i]} summed its own bytes`);
      });
    }
    assert.ok(recordBuffers.freeCount > 0, "released records went back to the pool");
    // Records of calls that do not release stay with them: the pool does not grow.
    releasing = false;
    const before = recordBuffers.freeCount;
    await Promise.all([1, 2, 3].map((seed) => client.call(PROGRAM, 1, 1, callBytes(seed))));
    assert.ok(recordBuffers.freeCount <= before, "records not released are not given back");
  } finally {
    await server.close();
  }
});
