import assert from "node:assert/strict";
import { test } from "node:test";
import {
  encodeFragments,
  encodeRecord,
  RecordDecoder,
  RecordMarkingError,
  RPC_FRAGMENTS_PER_RECORD_MAX,
  RPC_RECORD_BYTES_MAX,
} from "../../../src/rpc/index.ts";
import { SeededRandom } from "../../../src/util/random.ts";

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  const total = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

function bytesOf(...values: number[]): Uint8Array {
  return Uint8Array.from(values);
}

/** Feeds `stream` cut at `cuts` and collects the records, draining after every push. */
function decodeAll(stream: Uint8Array, cuts: readonly number[], decoder = new RecordDecoder()): Uint8Array[] {
  const records: Uint8Array[] = [];
  let from = 0;
  for (const to of [...cuts, stream.length]) {
    decoder.push(stream.subarray(from, to));
    from = to;
    for (let record = decoder.next(); record !== undefined; record = decoder.next()) records.push(record);
  }
  return records;
}

function framingError(code: string): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof RecordMarkingError, `expected a RecordMarkingError, got ${String(error)}`);
    assert.equal(error.code, code);
    return true;
  };
}

test("encodeRecord: one last-fragment header, then the chunks themselves", () => {
  const first = bytesOf(1, 2, 3);
  const second = bytesOf(4, 5);
  const encoded = encodeRecord([first, second]);
  assert.equal(encoded.length, 3);
  assert.deepEqual(encoded[0], bytesOf(0x80, 0, 0, 5));
  assert.equal(encoded[1], first, "the chunk is passed through, not copied");
  assert.equal(encoded[2], second);
  assert.deepEqual(encodeRecord([]), [bytesOf(0x80, 0, 0, 0)]);
});

test("RecordDecoder: reassembles a multi-fragment record, the last bit ending it", () => {
  const stream = encodeFragments([bytesOf(1, 2), bytesOf(3), bytesOf(4, 5, 6)]);
  assert.deepEqual(stream.subarray(0, 4), bytesOf(0, 0, 0, 2), "a fragment that is not last has no top bit");
  assert.deepEqual(decodeAll(stream, []), [bytesOf(1, 2, 3, 4, 5, 6)]);
});

test("RecordDecoder: every cut position of a small stream of records gives the same records", () => {
  const expected = [bytesOf(1, 2, 3, 4, 5), new Uint8Array(0), bytesOf(9, 8, 7, 6)];
  const stream = concat([
    encodeFragments([bytesOf(1, 2), new Uint8Array(0), bytesOf(3, 4, 5)]),
    encodeFragments([new Uint8Array(0)]),
    concat(encodeRecord([bytesOf(9, 8, 7, 6)])),
  ]);
  for (let cut = 0; cut <= stream.length; cut++) {
    assert.deepEqual(decodeAll(stream, [cut]), expected, `one cut at byte ${cut}`);
  }
  for (let first = 0; first <= stream.length; first++) {
    for (let second = first; second <= stream.length; second++) {
      assert.deepEqual(decodeAll(stream, [first, second]), expected, `cuts at ${first} and ${second}`);
    }
  }
  const byteByByte = Array.from({ length: stream.length }, (_, i) => i);
  assert.deepEqual(decodeAll(stream, byteByByte), expected, "one byte at a time");
});

test("RecordDecoder: a record inside one chunk is returned as a view, not a copy", () => {
  const stream = concat(encodeRecord([bytesOf(1, 2, 3, 4)]));
  const decoder = new RecordDecoder();
  decoder.push(stream);
  const record = decoder.next();
  assert.ok(record !== undefined);
  assert.equal(record.buffer, stream.buffer);
  assert.equal(decoder.idle, true);
});

test("RecordDecoder: pulls one record at a time and holds the rest as unparsed bytes", () => {
  const stream = concat([concat(encodeRecord([bytesOf(1)])), concat(encodeRecord([bytesOf(2)]))]);
  const decoder = new RecordDecoder();
  decoder.push(stream);
  assert.equal(decoder.bufferedBytes, 10);
  assert.deepEqual(decoder.next(), bytesOf(1));
  assert.equal(decoder.bufferedBytes, 5);
  assert.deepEqual(decoder.next(), bytesOf(2));
  assert.equal(decoder.next(), undefined);
  assert.equal(decoder.idle, true);
});

function oneMiBInFragments(): { payload: Uint8Array; stream: Uint8Array } {
  const payload = new SeededRandom(7).bytes(1024 * 1024);
  const fragmentBytes = [1, 100_000, 0, 300_001, 65_536, 4, 1024 * 1024 - 465_542];
  const fragments: Uint8Array[] = [];
  let at = 0;
  for (const length of fragmentBytes) {
    fragments.push(payload.subarray(at, at + length));
    at += length;
  }
  assert.equal(at, payload.length);
  return { payload, stream: encodeFragments(fragments) };
}

function cutsEvery(stepBytes: number, totalBytes: number): number[] {
  const cuts: number[] = [];
  for (let cut = stepBytes; cut < totalBytes; cut += stepBytes) cuts.push(cut);
  return cuts;
}

test("RecordDecoder: a 1 MiB record in 7 fragments arriving in 64 KiB chunks is intact", () => {
  const { payload, stream } = oneMiBInFragments();
  const records = decodeAll(stream, cutsEvery(65_536, stream.length));
  assert.equal(records.length, 1);
  assert.ok(Buffer.from(records[0]!).equals(payload), "record intact");
});

test("RecordDecoder: a 1 MiB record in 256-byte chunks takes linear time", () => {
  const { payload, stream } = oneMiBInFragments();
  const cuts = cutsEvery(256, stream.length);
  const repeats = 10;
  const started = performance.now();
  for (let i = 0; i < repeats; i++) {
    const [record] = decodeAll(stream, cuts);
    assert.equal(record?.length, payload.length);
  }
  // Linear work is a few ms a record; concatenating on each of the 4,100 chunks copies ~2 GiB.
  const perRecordMs = (performance.now() - started) / repeats;
  assert.ok(perRecordMs < 60, `decoding took ${perRecordMs.toFixed(1)} ms a record`);
});

test("RecordDecoder: a record of exactly the bound is taken, one byte more is refused from its header", () => {
  const decoder = new RecordDecoder({ recordBytesMax: 16 });
  assert.deepEqual(decodeAll(encodeFragments([new Uint8Array(10), new Uint8Array(6)]), [], decoder), [
    new Uint8Array(16),
  ]);
  const over = new RecordDecoder({ recordBytesMax: 16 });
  // Only the second fragment's header is sent: the bound is checked before its bytes are awaited.
  const stream = encodeFragments([new Uint8Array(10), new Uint8Array(7)]).subarray(0, 4 + 10 + 4);
  over.push(stream);
  assert.throws(() => over.next(), framingError("RECORD_TOO_LARGE"));
  assert.throws(() => over.next(), framingError("RECORD_TOO_LARGE"), "the decoder stays failed");
  assert.equal(over.bufferedBytes, 0, "a failed decoder holds nothing");
});

test("RecordDecoder: the default bound is RPC_RECORD_BYTES_MAX", () => {
  const decoder = new RecordDecoder();
  const header = new Uint8Array(4);
  new DataView(header.buffer).setUint32(0, 0x8000_0000 + RPC_RECORD_BYTES_MAX + 1);
  decoder.push(header);
  assert.throws(
    () => decoder.next(),
    (error) => {
      assert.ok(error instanceof RecordMarkingError);
      assert.equal(error.code, "RECORD_TOO_LARGE");
      assert.equal(error.recordBytes, RPC_RECORD_BYTES_MAX + 1);
      return true;
    },
  );
});

test("RecordDecoder: empty fragments count against the fragment bound", () => {
  const atBound = Array.from({ length: RPC_FRAGMENTS_PER_RECORD_MAX }, () => new Uint8Array(0));
  assert.deepEqual(decodeAll(encodeFragments(atBound), []), [new Uint8Array(0)]);
  const overBound = [...atBound, new Uint8Array(0)];
  assert.throws(
    () => decodeAll(encodeFragments(overBound), []),
    (error) => {
      assert.ok(error instanceof RecordMarkingError);
      assert.equal(error.code, "TOO_MANY_FRAGMENTS");
      assert.equal(error.fragmentCount, RPC_FRAGMENTS_PER_RECORD_MAX + 1);
      return true;
    },
  );
});

test("RecordDecoder: the fragment count starts again with each record", () => {
  const decoder = new RecordDecoder({ fragmentsPerRecordMax: 2 });
  const twoFragments = encodeFragments([bytesOf(1), bytesOf(2)]);
  assert.equal(decodeAll(concat([twoFragments, twoFragments, twoFragments]), [], decoder).length, 3);
});
