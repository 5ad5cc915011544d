/**
 * The storage tier's shared vocabulary: what a storage server offers its clients (filers, the
 * migration coordinator, other storage servers), independent of the wire.
 */

/** Default chunk: 4 MiB, 1024 blocks of 4 KiB. */
export const CHUNK_BLOCKS_DEFAULT = 1024;
/** A chunk file's checksum table has room for this many blocks (16 MiB chunks at most). */
export const CHUNK_BLOCKS_MAX = 4096;
/** Blocks one read, write or copy request may carry: 1 MiB, so a request fits one RPC record. */
export const REQUEST_BLOCKS_MAX = 256;
/** Volume ids: short, path-safe, because they name directories on storage servers. */
export const VOLUME_ID_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;
/** Storage server ids name keys in the coordination store. */
export const SERVER_ID_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;

export type StorageErrorCode =
  /** The request carried an owner epoch lower than the highest the server has seen for the volume. */
  | "FENCED"
  /** A stored block does not match its checksum; `blockIndex` (within the chunk) names it. */
  | "CHECKSUM"
  /** The server holds no such chunk (never created, or dropped). */
  | "NO_CHUNK"
  /** A copy request names a copy generation the target is not filling (restarted, or never begun). */
  | "STALE_COPY"
  /** The request is malformed or out of range; retrying it will not help. */
  | "INVALID"
  /** The client did not prove it knows the cluster secret. */
  | "UNAUTHENTICATED"
  /** The server's disk failed the operation. */
  | "IO"
  /** The server could not be reached or did not answer in time; the call may be retried. */
  | "UNAVAILABLE";

export class StorageError extends Error {
  override name = "StorageError";
  readonly code: StorageErrorCode;
  /** For CHECKSUM: the first bad block, as an index within the chunk. */
  readonly blockIndex: number | undefined;
  constructor(code: StorageErrorCode, message: string, options?: { blockIndex?: number; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.blockIndex = options?.blockIndex;
  }
}

/** Names one chunk of one volume. */
export interface ChunkRef {
  readonly volumeId: string;
  readonly chunkIndex: number;
}

/** What a storage server reports of itself (registration and load monitor). */
export interface ServerStats {
  readonly serverId: string;
  readonly capacityBytes: number;
  /** Bytes of chunk files allocated on disk. */
  readonly usedBytes: number;
  readonly chunkCount: number;
  /** Since the server started. */
  readonly readBytes: number;
  readonly writtenBytes: number;
  readonly requestsInFlight: number;
}

/**
 * One storage server as its clients see it. Every call may reject with StorageError; network failures
 * are UNAVAILABLE. `ownerEpoch` is the caller's owner epoch of the volume (fencing): a server refuses
 * it with FENCED when it has seen a higher one, and raises its persisted highest epoch when the
 * request carries a higher one.
 */
export interface StorageClient extends AsyncDisposable {
  readonly serverId: string;

  /** Makes an empty chunk (all zeros); idempotent. Owner epoch 0: a volume being made (no fencing). */
  createChunk(chunk: ChunkRef, ownerEpoch: number): Promise<void>;
  /**
   * `blockOffset` and `blockCount` are within the chunk; blockCount <= REQUEST_BLOCKS_MAX. Owner
   * epoch 0 reads without fencing, for readers that own nothing (copies, checks).
   */
  read(chunk: ChunkRef, ownerEpoch: number, blockOffset: number, blockCount: number): Promise<Uint8Array>;
  /** Whole blocks; data.length / 4096 <= REQUEST_BLOCKS_MAX. Durable only after `flush`. Epoch >= 1. */
  write(chunk: ChunkRef, ownerEpoch: number, blockOffset: number, data: Uint8Array): Promise<void>;
  /** Makes every write to the volume that resolved before this call durable. */
  flush(volumeId: string, ownerEpoch: number): Promise<void>;
  /** Raises the server's highest owner epoch for the volume (persisted) without any I/O. */
  fence(volumeId: string, ownerEpoch: number): Promise<void>;
  /** The highest owner epoch the server has persisted for the volume (0 if none). */
  ownerEpoch(volumeId: string): Promise<number>;

  // Migration: the target of a chunk move is "filling" for one copy generation at a time.

  /**
   * Starts (or restarts) filling `chunk` for copy `generation`: creates the chunk if needed and
   * forgets which blocks client writes have touched. A lower generation than the current one is
   * STALE_COPY. While filling, client writes still apply and mark their blocks as fresh.
   */
  beginFill(chunk: ChunkRef, generation: number): Promise<void>;
  /**
   * Copies blocks [blockOffset, blockOffset + blockCount) of `chunk` from `sourceServerId` into this
   * server, skipping every block a client write has touched since beginFill: such a block is newer
   * than anything the copy can have read. Resolves with the number of blocks written.
   * blockCount <= REQUEST_BLOCKS_MAX.
   */
  copyFrom(
    chunk: ChunkRef,
    generation: number,
    sourceServerId: string,
    blockOffset: number,
    blockCount: number,
  ): Promise<number>;
  /** Ends filling (keeps the data); idempotent for the same generation. */
  endFill(chunk: ChunkRef, generation: number): Promise<void>;
  /** The checksum (CRC-32) of each of the chunk's first `blockCount` blocks, as stored. */
  checksums(chunk: ChunkRef, blockCount: number): Promise<Uint32Array>;
  /** Deletes the chunk's data; idempotent. */
  dropChunk(chunk: ChunkRef): Promise<void>;

  stats(): Promise<ServerStats>;
}

/** How a storage server or client finds another storage server by id. */
export interface ServerDirectory {
  /** The address of `serverId`, or undefined if it is not registered (dead or unknown). */
  addressOf(serverId: string): { readonly host: string; readonly port: number } | undefined;
}
