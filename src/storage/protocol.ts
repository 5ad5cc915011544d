/**
 * The storage protocol: ONC RPC program STORAGE_PROGRAM version 1. Every procedure's arguments and
 * results, as XDR, with their bounds. Both sides use these codecs: the client to encode arguments and
 * decode results, the server the other way round.
 *
 * Every reply body starts with a status (WireStatus). OK is followed by the procedure's results; any
 * other status by a message (and, for CHECKSUM, first the index of the bad block within the chunk).
 *
 * Input that is not well-formed XDR (cut short, over a length bound, bytes left over) throws XdrError,
 * which the RPC layer answers with GARBAGE_ARGS. Well-formed input with values out of range (a volume
 * id that is not one, blocks beyond the chunk, too many blocks) throws StorageError INVALID, which the
 * server answers with the INVALID status.
 */
import { BLOCK_BYTES } from "../block/types.ts";
import { XdrError, type XdrReader, XdrWriter } from "../xdr/index.ts";
import {
  CHUNK_BLOCKS_MAX,
  type ChunkRef,
  REQUEST_BLOCKS_MAX,
  SERVER_ID_PATTERN,
  type ServerStats,
  StorageError,
  type StorageErrorCode,
  VOLUME_ID_PATTERN,
} from "./types.ts";

/** In the user-defined range of RFC 5531 (0x20000000 to 0x3fffffff). */
export const STORAGE_PROGRAM = 0x2f10a001;
export const STORAGE_VERSION = 1;

export const StorageProc = {
  NULL: 0,
  /** Handshake, step 1: the client's nonce in; the server's id, nonce and proof out. */
  HELLO: 1,
  /** Handshake, step 2: the client's proof in; the connection is authenticated if it holds. */
  PROVE: 2,
  CREATE_CHUNK: 3,
  READ: 4,
  WRITE: 5,
  FLUSH: 6,
  FENCE: 7,
  OWNER_EPOCH: 8,
  BEGIN_FILL: 9,
  COPY_FROM: 10,
  END_FILL: 11,
  CHECKSUMS: 12,
  DROP_CHUNK: 13,
  STATS: 14,
} as const;
export type StorageProcName = keyof typeof StorageProc;

/** The status every reply starts with: OK, or one StorageErrorCode each (a missing one is a compile error). */
export const WireStatus = {
  OK: 0,
  FENCED: 1,
  CHECKSUM: 2,
  NO_CHUNK: 3,
  STALE_COPY: 4,
  INVALID: 5,
  UNAUTHENTICATED: 6,
  IO: 7,
  UNAVAILABLE: 8,
} as const satisfies { readonly [K in "OK" | StorageErrorCode]: number };

const CODE_OF_STATUS = new Map<number, StorageErrorCode>(
  (Object.keys(WireStatus) as ("OK" | StorageErrorCode)[]).flatMap((name) =>
    name === "OK" ? [] : [[WireStatus[name], name] as const],
  ),
);

export const AUTH_NONCE_BYTES = 32;
/** HMAC-SHA256. */
export const AUTH_PROOF_BYTES = 32;
/** Volume and server ids are at most 63 bytes (VOLUME_ID_PATTERN, SERVER_ID_PATTERN). */
export const ID_BYTES_MAX = 63;
/** A failure's message; longer ones are cut (they are for people, not programs). */
export const MESSAGE_BYTES_MAX = 1024;
/** The data of one READ reply or WRITE call. */
export const REQUEST_BYTES_MAX = REQUEST_BLOCKS_MAX * BLOCK_BYTES;

// ---- arguments and results -------------------------------------------------------------------

export interface HelloArgs {
  readonly clientNonce: Uint8Array;
}
export interface HelloResult {
  readonly serverId: string;
  readonly serverNonce: Uint8Array;
  readonly serverProof: Uint8Array;
}
export interface ProveArgs {
  readonly clientProof: Uint8Array;
}
export interface ChunkArgs {
  readonly chunk: ChunkRef;
}
export interface ChunkEpochArgs {
  readonly chunk: ChunkRef;
  readonly ownerEpoch: number;
}
export interface ReadArgs {
  readonly chunk: ChunkRef;
  readonly ownerEpoch: number;
  readonly blockOffset: number;
  readonly blockCount: number;
}
/** Data and the CRC-32 of each of its blocks, as stored (reads) or as the client computed them (writes). */
export interface BlockData {
  readonly data: Uint8Array;
  readonly checksums: Uint32Array;
}
export interface WriteArgs extends BlockData {
  readonly chunk: ChunkRef;
  readonly ownerEpoch: number;
  readonly blockOffset: number;
}
export interface VolumeArgs {
  readonly volumeId: string;
}
export interface VolumeEpochArgs {
  readonly volumeId: string;
  readonly ownerEpoch: number;
}
export interface FillArgs {
  readonly chunk: ChunkRef;
  readonly generation: number;
}
export interface CopyFromArgs {
  readonly chunk: ChunkRef;
  readonly generation: number;
  readonly sourceServerId: string;
  readonly blockOffset: number;
  readonly blockCount: number;
}
export interface ChecksumsArgs {
  readonly chunk: ChunkRef;
  readonly blockCount: number;
}

/** The arguments and results of every procedure. */
export interface StorageProcTypes {
  NULL: { args: undefined; result: undefined };
  HELLO: { args: HelloArgs; result: HelloResult };
  PROVE: { args: ProveArgs; result: undefined };
  CREATE_CHUNK: { args: ChunkEpochArgs; result: undefined };
  READ: { args: ReadArgs; result: BlockData };
  WRITE: { args: WriteArgs; result: undefined };
  FLUSH: { args: VolumeEpochArgs; result: undefined };
  FENCE: { args: VolumeEpochArgs; result: undefined };
  OWNER_EPOCH: { args: VolumeArgs; result: number };
  BEGIN_FILL: { args: FillArgs; result: undefined };
  COPY_FROM: { args: CopyFromArgs; result: number };
  END_FILL: { args: FillArgs; result: undefined };
  CHECKSUMS: { args: ChecksumsArgs; result: Uint32Array };
  DROP_CHUNK: { args: ChunkArgs; result: undefined };
  STATS: { args: undefined; result: ServerStats };
}

/**
 * One procedure's codec. `encodeArgs` validates first (StorageError INVALID) so a client never sends
 * what the server would refuse; `decodeArgs` consumes every byte; `encodeResult` includes the OK
 * status; `decodeResult` starts after it. Large data travels as its own chunk, never copied.
 */
export interface ProcCodec<Args, Result> {
  readonly procedure: number;
  encodeArgs(args: Args): Uint8Array[];
  decodeArgs(r: XdrReader): Args;
  encodeResult(result: Result): Uint8Array[];
  decodeResult(r: XdrReader): Result;
}

export type StorageCodecs = {
  readonly [P in StorageProcName]: ProcCodec<StorageProcTypes[P]["args"], StorageProcTypes[P]["result"]>;
};

// ---- validation (shared by both sides) ------------------------------------------------------

export function invalid(message: string): StorageError {
  return new StorageError("INVALID", message);
}

export function checkVolumeId(volumeId: string): void {
  if (!VOLUME_ID_PATTERN.test(volumeId)) throw invalid(`"${volumeId}" is not a volume id`);
}

export function checkServerId(serverId: string): void {
  if (!SERVER_ID_PATTERN.test(serverId)) throw invalid(`"${serverId}" is not a storage server id`);
}

export function checkChunk(chunk: ChunkRef): void {
  checkVolumeId(chunk.volumeId);
  if (!isU32(chunk.chunkIndex)) throw invalid(`chunk index ${chunk.chunkIndex} is not in [0, 2^32)`);
}

/** An owner epoch or copy generation: a safe non-negative integer (0 is "no owner" for epochs). */
export function checkCounter(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0)
    throw invalid(`${what} ${value} is not a non-negative integer`);
}

/** [blockOffset, blockOffset + blockCount) lies in a chunk and holds 1 to `countMax` blocks. */
export function checkBlockRange(blockOffset: number, blockCount: number, countMax: number): void {
  if (!isU32(blockOffset) || !isU32(blockCount)) {
    throw invalid(`block range ${blockOffset}+${blockCount} is not two unsigned integers`);
  }
  if (blockCount < 1 || blockCount > countMax)
    throw invalid(`${blockCount} blocks: 1 to ${countMax} allowed`);
  if (blockOffset + blockCount > CHUNK_BLOCKS_MAX) {
    throw invalid(`blocks ${blockOffset}+${blockCount} end beyond a chunk of ${CHUNK_BLOCKS_MAX} blocks`);
  }
}

/** Whole blocks, at most a request's worth, with one checksum each. */
export function checkBlockData(blockOffset: number, data: Uint8Array, checksums: Uint32Array): void {
  if (data.length % BLOCK_BYTES !== 0)
    throw invalid(`${data.length} bytes are not whole ${BLOCK_BYTES}-byte blocks`);
  checkBlockRange(blockOffset, data.length / BLOCK_BYTES, REQUEST_BLOCKS_MAX);
  if (checksums.length !== data.length / BLOCK_BYTES) {
    throw invalid(`${checksums.length} checksums for ${data.length / BLOCK_BYTES} blocks`);
  }
}

function isU32(value: number): boolean {
  return Number.isInteger(value) && value >= 0 && value <= 0xffffffff;
}

// ---- field codecs --------------------------------------------------------------------------

function readId(r: XdrReader, what: string): string {
  return r.string(ID_BYTES_MAX, what);
}

function readChunk(r: XdrReader): ChunkRef {
  const volumeId = readId(r, "volume id");
  return { volumeId, chunkIndex: r.u32() };
}

function writeChunk(w: XdrWriter, chunk: ChunkRef): XdrWriter {
  return w.string(chunk.volumeId).u32(chunk.chunkIndex);
}

function readChecksums(r: XdrReader, countMax: number): Uint32Array {
  const count = r.u32();
  if (count > countMax) throw new XdrError(`${count} checksums exceed ${countMax}`);
  const checksums = new Uint32Array(count);
  for (let i = 0; i < count; i++) checksums[i] = r.u32();
  return checksums;
}

function writeChecksums(w: XdrWriter, checksums: Uint32Array): XdrWriter {
  w.u32(checksums.length);
  for (const checksum of checksums) w.u32(checksum);
  return w;
}

/** `fields` (already holding the fields before the data), then the data as a chunk of its own. */
function withData(w: XdrWriter, data: Uint8Array): Uint8Array[] {
  // Whole blocks need no XDR padding, so the data can follow as it is.
  w.u32(data.length);
  return [w.bytes(), data];
}

function finished<T>(r: XdrReader, what: string, value: T): T {
  r.finish(what);
  return value;
}

const NO_ARGS: Uint8Array[] = [];
const OK_ONLY: Uint8Array[] = [new XdrWriter(4).u32(WireStatus.OK).bytes()];

function ok(): XdrWriter {
  return new XdrWriter(64).u32(WireStatus.OK);
}

/** A procedure whose result is the status alone. */
function statusOnly<Args>(
  procedure: number,
  encode: (w: XdrWriter, args: Args) => void,
  decode: (r: XdrReader) => Args,
  validate: (args: Args) => void,
): ProcCodec<Args, undefined> {
  return {
    procedure,
    encodeArgs(args) {
      validate(args);
      const w = new XdrWriter(96);
      encode(w, args);
      return [w.bytes()];
    },
    decodeArgs(r) {
      const args = decode(r);
      r.finish("arguments");
      validate(args);
      return args;
    },
    encodeResult: () => OK_ONLY,
    decodeResult: () => undefined,
  };
}

const chunkEpochCodec = (procedure: number): ProcCodec<ChunkEpochArgs, undefined> =>
  statusOnly(
    procedure,
    (w, a) => writeChunk(w, a.chunk).u64(a.ownerEpoch),
    (r) => ({ chunk: readChunk(r), ownerEpoch: r.u64Number("owner epoch") }),
    (a) => {
      checkChunk(a.chunk);
      checkCounter(a.ownerEpoch, "owner epoch");
    },
  );

const volumeEpochCodec = (procedure: number): ProcCodec<VolumeEpochArgs, undefined> =>
  statusOnly(
    procedure,
    (w, a) => w.string(a.volumeId).u64(a.ownerEpoch),
    (r) => ({ volumeId: readId(r, "volume id"), ownerEpoch: r.u64Number("owner epoch") }),
    (a) => {
      checkVolumeId(a.volumeId);
      checkCounter(a.ownerEpoch, "owner epoch");
    },
  );

const fillCodec = (procedure: number): ProcCodec<FillArgs, undefined> =>
  statusOnly(
    procedure,
    (w, a) => writeChunk(w, a.chunk).u64(a.generation),
    (r) => ({ chunk: readChunk(r), generation: r.u64Number("generation") }),
    (a) => {
      checkChunk(a.chunk);
      checkCounter(a.generation, "copy generation");
    },
  );

function checkRead(a: ReadArgs): void {
  checkChunk(a.chunk);
  checkCounter(a.ownerEpoch, "owner epoch");
  checkBlockRange(a.blockOffset, a.blockCount, REQUEST_BLOCKS_MAX);
}

function checkWrite(a: WriteArgs): void {
  checkChunk(a.chunk);
  checkCounter(a.ownerEpoch, "owner epoch");
  checkBlockData(a.blockOffset, a.data, a.checksums);
}

function checkCopy(a: CopyFromArgs): void {
  checkChunk(a.chunk);
  checkCounter(a.generation, "copy generation");
  checkServerId(a.sourceServerId);
  checkBlockRange(a.blockOffset, a.blockCount, REQUEST_BLOCKS_MAX);
}

function checkChecksums(a: ChecksumsArgs): void {
  checkChunk(a.chunk);
  checkBlockRange(0, a.blockCount, CHUNK_BLOCKS_MAX);
}

function readStats(r: XdrReader): ServerStats {
  return {
    serverId: readId(r, "server id"),
    capacityBytes: r.u64Number("capacity"),
    usedBytes: r.u64Number("used bytes"),
    chunkCount: r.u64Number("chunk count"),
    readBytes: r.u64Number("read bytes"),
    writtenBytes: r.u64Number("written bytes"),
    requestsInFlight: r.u32(),
  };
}

function writeStats(w: XdrWriter, s: ServerStats): XdrWriter {
  w.string(s.serverId).u64(s.capacityBytes).u64(s.usedBytes).u64(s.chunkCount);
  return w.u64(s.readBytes).u64(s.writtenBytes).u32(s.requestsInFlight);
}

export const CODECS: StorageCodecs = {
  NULL: {
    procedure: StorageProc.NULL,
    encodeArgs: () => NO_ARGS,
    decodeArgs: (r) => finished(r, "NULL arguments", undefined),
    encodeResult: () => NO_ARGS,
    decodeResult: () => undefined,
  },
  HELLO: {
    procedure: StorageProc.HELLO,
    encodeArgs: (a) => [new XdrWriter(AUTH_NONCE_BYTES).opaqueFixed(a.clientNonce).bytes()],
    decodeArgs: (r) => finished(r, "HELLO arguments", { clientNonce: r.opaqueFixed(AUTH_NONCE_BYTES) }),
    encodeResult: (s) => [
      ok().string(s.serverId).opaqueFixed(s.serverNonce).opaqueFixed(s.serverProof).bytes(),
    ],
    decodeResult: (r) => ({
      serverId: readId(r, "server id"),
      serverNonce: r.opaqueFixed(AUTH_NONCE_BYTES),
      serverProof: r.opaqueFixed(AUTH_PROOF_BYTES),
    }),
  },
  PROVE: statusOnly(
    StorageProc.PROVE,
    (w, a) => w.opaqueFixed(a.clientProof),
    (r) => ({ clientProof: r.opaqueFixed(AUTH_PROOF_BYTES) }),
    (a) => {
      if (a.clientProof.length !== AUTH_PROOF_BYTES) throw invalid(`a proof is ${AUTH_PROOF_BYTES} bytes`);
    },
  ),
  CREATE_CHUNK: chunkEpochCodec(StorageProc.CREATE_CHUNK),
  READ: {
    procedure: StorageProc.READ,
    encodeArgs(a) {
      checkRead(a);
      return [
        writeChunk(new XdrWriter(96), a.chunk).u64(a.ownerEpoch).u32(a.blockOffset).u32(a.blockCount).bytes(),
      ];
    },
    decodeArgs(r) {
      const chunk = readChunk(r);
      const args = {
        chunk,
        ownerEpoch: r.u64Number("owner epoch"),
        blockOffset: r.u32(),
        blockCount: r.u32(),
      };
      r.finish("READ arguments");
      checkRead(args);
      return args;
    },
    encodeResult: (d) =>
      withData(
        writeChecksums(new XdrWriter(16 + 4 * d.checksums.length).u32(WireStatus.OK), d.checksums),
        d.data,
      ),
    decodeResult(r) {
      const checksums = readChecksums(r, REQUEST_BLOCKS_MAX);
      const data = r.opaque(REQUEST_BYTES_MAX, "data");
      if (data.length !== checksums.length * BLOCK_BYTES) {
        throw new XdrError(`${data.length} bytes of data for ${checksums.length} checksums`);
      }
      return { checksums, data };
    },
  },
  WRITE: {
    procedure: StorageProc.WRITE,
    encodeArgs(a) {
      checkWrite(a);
      const w = writeChunk(new XdrWriter(128 + 4 * a.checksums.length), a.chunk)
        .u64(a.ownerEpoch)
        .u32(a.blockOffset);
      return withData(writeChecksums(w, a.checksums), a.data);
    },
    decodeArgs(r) {
      const chunk = readChunk(r);
      const ownerEpoch = r.u64Number("owner epoch");
      const blockOffset = r.u32();
      const checksums = readChecksums(r, REQUEST_BLOCKS_MAX);
      const data = r.opaque(REQUEST_BYTES_MAX, "data");
      r.finish("WRITE arguments");
      const args = { chunk, ownerEpoch, blockOffset, checksums, data };
      checkWrite(args);
      return args;
    },
    encodeResult: () => OK_ONLY,
    decodeResult: () => undefined,
  },
  FLUSH: volumeEpochCodec(StorageProc.FLUSH),
  FENCE: volumeEpochCodec(StorageProc.FENCE),
  OWNER_EPOCH: {
    procedure: StorageProc.OWNER_EPOCH,
    encodeArgs(a) {
      checkVolumeId(a.volumeId);
      return [new XdrWriter(72).string(a.volumeId).bytes()];
    },
    decodeArgs(r) {
      const args = { volumeId: readId(r, "volume id") };
      r.finish("OWNER_EPOCH arguments");
      checkVolumeId(args.volumeId);
      return args;
    },
    encodeResult: (epoch) => [ok().u64(epoch).bytes()],
    decodeResult: (r) => r.u64Number("owner epoch"),
  },
  BEGIN_FILL: fillCodec(StorageProc.BEGIN_FILL),
  COPY_FROM: {
    procedure: StorageProc.COPY_FROM,
    encodeArgs(a) {
      checkCopy(a);
      const w = writeChunk(new XdrWriter(160), a.chunk).u64(a.generation).string(a.sourceServerId);
      return [w.u32(a.blockOffset).u32(a.blockCount).bytes()];
    },
    decodeArgs(r) {
      const chunk = readChunk(r);
      const generation = r.u64Number("generation");
      const sourceServerId = readId(r, "source server id");
      const args = { chunk, generation, sourceServerId, blockOffset: r.u32(), blockCount: r.u32() };
      r.finish("COPY_FROM arguments");
      checkCopy(args);
      return args;
    },
    encodeResult: (written) => [ok().u32(written).bytes()],
    decodeResult: (r) => r.u32(),
  },
  END_FILL: fillCodec(StorageProc.END_FILL),
  CHECKSUMS: {
    procedure: StorageProc.CHECKSUMS,
    encodeArgs(a) {
      checkChecksums(a);
      return [writeChunk(new XdrWriter(80), a.chunk).u32(a.blockCount).bytes()];
    },
    decodeArgs(r) {
      const args = { chunk: readChunk(r), blockCount: r.u32() };
      r.finish("CHECKSUMS arguments");
      checkChecksums(args);
      return args;
    },
    encodeResult: (checksums) => [
      writeChecksums(new XdrWriter(8 + 4 * checksums.length).u32(WireStatus.OK), checksums).bytes(),
    ],
    decodeResult: (r) => readChecksums(r, CHUNK_BLOCKS_MAX),
  },
  DROP_CHUNK: statusOnly(
    StorageProc.DROP_CHUNK,
    (w, a) => writeChunk(w, a.chunk),
    (r) => ({ chunk: readChunk(r) }),
    (a) => checkChunk(a.chunk),
  ),
  STATS: {
    procedure: StorageProc.STATS,
    encodeArgs: () => NO_ARGS,
    decodeArgs: (r) => finished(r, "STATS arguments", undefined),
    encodeResult: (s) => [writeStats(ok(), s).bytes()],
    decodeResult: readStats,
  },
};

// ---- failures --------------------------------------------------------------------------------

const encoder = new TextEncoder();

/** A failure reply body: status, the bad block for CHECKSUM, and the message (cut to its bound). */
export function encodeFailure(error: StorageError): Uint8Array[] {
  const w = new XdrWriter(64).u32(WireStatus[error.code]);
  if (error.code === "CHECKSUM") w.u32(error.blockIndex ?? 0);
  let message = encoder.encode(error.message);
  if (message.length > MESSAGE_BYTES_MAX) message = message.subarray(0, MESSAGE_BYTES_MAX);
  return [w.opaque(message).bytes()];
}

/**
 * Reads a reply's status: returns for OK (the reader is then at the results), throws the StorageError
 * a failure carries, and XdrError for a status or body that is malformed.
 */
export function readStatus(r: XdrReader): void {
  const status = r.u32();
  if (status === WireStatus.OK) return;
  const code = CODE_OF_STATUS.get(status);
  if (code === undefined) throw new XdrError(`reply status ${status} is not a storage status`);
  const blockIndex = code === "CHECKSUM" ? r.u32() : undefined;
  const message = r.string(MESSAGE_BYTES_MAX, "message");
  r.finish("failure reply");
  throw new StorageError(code, message, blockIndex === undefined ? undefined : { blockIndex });
}

/** Decodes a whole reply body with `codec`: the status, then the results, every byte. */
export function decodeReplyBody<Result>(codec: ProcCodec<unknown, Result>, r: XdrReader): Result {
  readStatus(r);
  const result = codec.decodeResult(r);
  r.finish("results");
  return result;
}
