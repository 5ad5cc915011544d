/**
 * A StorageClient over the storage protocol: one TCP connection, opened on the first call and
 * authenticated (HELLO/PROVE), many calls in flight on it. A broken connection is replaced on the
 * next call. Nothing is retried: a call that may have reached the server is the caller's to judge.
 */
import { type Logger, pino } from "pino";
import { BLOCK_BYTES } from "../block/types.ts";
import { RpcClient, type RpcExchangeOptions } from "../rpc/client.ts";
import type { RpcReply } from "../rpc/message.ts";
import { type Clock, systemClock } from "../util/clock.ts";
import { XdrError, type XdrReader } from "../xdr/index.ts";
import { ClusterSecret, checkServerHello, newNonce } from "./auth.ts";
import { blockChecksums, firstBadBlock } from "./chunk-format.ts";
import {
  type BlockData,
  CODECS,
  decodeReplyBody,
  STORAGE_PROGRAM,
  STORAGE_VERSION,
  type StorageProcName,
  type StorageProcTypes,
} from "./protocol.ts";
import { type ChunkRef, type ServerStats, type StorageClient, StorageError } from "./types.ts";

export const STORAGE_CALL_TIMEOUT_MS = 10_000;
export const STORAGE_CONNECT_TIMEOUT_MS = 2_000;
/** Calls one client may have outstanding; beyond it calls fail at once (the caller is not pacing itself). */
export const STORAGE_CLIENT_OUTSTANDING_MAX = 256;

export interface RemoteStorageClientOptions {
  /** The server this client talks to: a server answering with another id is refused. */
  readonly serverId: string;
  readonly host: string;
  readonly port: number;
  /** The cluster secret (32 bytes or more), or one already made into a key. */
  readonly secret: ClusterSecret | Uint8Array;
  /** Per call, from sending to the reply. */
  readonly callTimeoutMs?: number;
  /** Connecting and authenticating. */
  readonly connectTimeoutMs?: number;
  readonly outstandingMax?: number;
  readonly logger?: Logger;
  readonly clock?: Clock;
}

type Args<P extends StorageProcName> = StorageProcTypes[P]["args"];
type Result<P extends StorageProcName> = StorageProcTypes[P]["result"];

export class RemoteStorageClient implements StorageClient {
  readonly serverId: string;
  readonly host: string;
  readonly port: number;
  private readonly secret: ClusterSecret;
  private readonly callTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly outstandingMax: number;
  private readonly log: Logger;
  private readonly clock: Clock;
  private rpc: RpcClient | undefined;
  private connecting: Promise<RpcClient> | undefined;
  private outstanding = 0;
  private closed = false;

  constructor(options: RemoteStorageClientOptions) {
    this.serverId = options.serverId;
    this.host = options.host;
    this.port = options.port;
    this.secret =
      options.secret instanceof ClusterSecret ? options.secret : new ClusterSecret(options.secret);
    this.callTimeoutMs = options.callTimeoutMs ?? STORAGE_CALL_TIMEOUT_MS;
    this.connectTimeoutMs = options.connectTimeoutMs ?? STORAGE_CONNECT_TIMEOUT_MS;
    this.outstandingMax = options.outstandingMax ?? STORAGE_CLIENT_OUTSTANDING_MAX;
    this.clock = options.clock ?? systemClock;
    this.log = (options.logger ?? pino({ level: "silent" })).child({
      component: "storage-client",
      serverId: options.serverId,
    });
  }

  get outstandingCount(): number {
    return this.outstanding;
  }

  createChunk(chunk: ChunkRef, ownerEpoch: number): Promise<void> {
    return this.call("CREATE_CHUNK", { chunk, ownerEpoch });
  }

  async read(
    chunk: ChunkRef,
    ownerEpoch: number,
    blockOffset: number,
    blockCount: number,
  ): Promise<Uint8Array> {
    return (await this.readBlocks(chunk, ownerEpoch, blockOffset, blockCount)).data;
  }

  /**
   * A read with each block's stored CRC-32, checked here on arrival. Owner epoch 0 reads without
   * fencing (copies and checks by servers and the coordinator, which own nothing).
   */
  async readBlocks(
    chunk: ChunkRef,
    ownerEpoch: number,
    blockOffset: number,
    blockCount: number,
  ): Promise<BlockData> {
    const result = await this.call("READ", { chunk, ownerEpoch, blockOffset, blockCount });
    if (result.checksums.length !== blockCount) {
      throw new StorageError(
        "UNAVAILABLE",
        `${this.serverId}: READ of ${blockCount} blocks returned ${result.checksums.length}`,
      );
    }
    const bad = firstBadBlock(result.data, result.checksums);
    if (bad >= 0) {
      throw new StorageError(
        "UNAVAILABLE",
        `${this.serverId}: block ${blockOffset + bad} arrived damaged; read again`,
      );
    }
    return result;
  }

  write(chunk: ChunkRef, ownerEpoch: number, blockOffset: number, data: Uint8Array): Promise<void> {
    if (data.length % BLOCK_BYTES !== 0) {
      return Promise.reject(new StorageError("INVALID", `${data.length} bytes are not whole blocks`));
    }
    return this.call("WRITE", { chunk, ownerEpoch, blockOffset, data, checksums: blockChecksums(data) });
  }

  flush(volumeId: string, ownerEpoch: number): Promise<void> {
    return this.call("FLUSH", { volumeId, ownerEpoch });
  }

  fence(volumeId: string, ownerEpoch: number): Promise<void> {
    return this.call("FENCE", { volumeId, ownerEpoch });
  }

  ownerEpoch(volumeId: string): Promise<number> {
    return this.call("OWNER_EPOCH", { volumeId });
  }

  beginFill(chunk: ChunkRef, generation: number): Promise<void> {
    return this.call("BEGIN_FILL", { chunk, generation });
  }

  copyFrom(
    chunk: ChunkRef,
    generation: number,
    sourceServerId: string,
    blockOffset: number,
    blockCount: number,
  ): Promise<number> {
    return this.call("COPY_FROM", { chunk, generation, sourceServerId, blockOffset, blockCount });
  }

  endFill(chunk: ChunkRef, generation: number): Promise<void> {
    return this.call("END_FILL", { chunk, generation });
  }

  checksums(chunk: ChunkRef, blockCount: number): Promise<Uint32Array> {
    return this.call("CHECKSUMS", { chunk, blockCount });
  }

  dropChunk(chunk: ChunkRef): Promise<void> {
    return this.call("DROP_CHUNK", { chunk });
  }

  stats(): Promise<ServerStats> {
    return this.call("STATS", undefined);
  }

  /** Closes the connection; calls outstanding fail with UNAVAILABLE, later ones at once. */
  async close(): Promise<void> {
    this.closed = true;
    const rpc = this.rpc ?? (await this.connecting?.catch(() => undefined));
    this.rpc = undefined;
    await rpc?.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private async call<P extends StorageProcName>(name: P, args: Args<P>): Promise<Result<P>> {
    if (this.closed) throw new StorageError("UNAVAILABLE", `the client of ${this.serverId} is closed`);
    if (this.outstanding >= this.outstandingMax) {
      throw new StorageError("UNAVAILABLE", `${this.outstanding} calls to ${this.serverId} outstanding`);
    }
    this.outstanding++;
    try {
      const codec = CODECS[name];
      // Validated before anything is sent: INVALID never costs a round trip.
      const encoded = codec.encodeArgs(args);
      const rpc = await this.connection();
      let reply: RpcReply;
      try {
        reply = await rpc.call(STORAGE_PROGRAM, STORAGE_VERSION, codec.procedure, encoded, {
          timeoutMs: this.callTimeoutMs,
        });
      } catch (error) {
        throw this.unavailable(`${name} failed`, error);
      }
      try {
        return decodeReplyBody(codec, resultsOf(reply, this.serverId));
      } catch (error) {
        if (!(error instanceof XdrError)) throw error;
        // A reply we cannot read: the stream cannot be trusted any more.
        void rpc.close();
        throw this.unavailable(`malformed ${name} reply`, error);
      }
    } finally {
      this.outstanding--;
    }
  }

  /** The open connection, or a new one (joined by every call that needs it meanwhile). */
  private connection(): Promise<RpcClient> {
    if (this.rpc !== undefined && !this.rpc.closed) return Promise.resolve(this.rpc);
    this.rpc = undefined;
    this.connecting ??= this.connect().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async connect(): Promise<RpcClient> {
    const controller = new AbortController();
    const timer = this.clock.every(this.connectTimeoutMs, () =>
      controller.abort(
        new StorageError("UNAVAILABLE", `no authenticated connection in ${this.connectTimeoutMs} ms`),
      ),
    );
    try {
      let rpc: RpcClient;
      try {
        rpc = await RpcClient.connect(this.host, this.port, {
          signal: controller.signal,
          timeoutMs: this.callTimeoutMs,
          clock: this.clock,
          logger: this.log,
        });
      } catch (error) {
        throw this.unavailable("cannot connect", error);
      }
      try {
        await authenticate(rpc, this.secret, this.serverId, { signal: controller.signal });
        if (this.closed) throw new StorageError("UNAVAILABLE", `the client of ${this.serverId} is closed`);
      } catch (error) {
        await rpc.close();
        throw error instanceof StorageError ? error : this.unavailable("handshake failed", error);
      }
      this.rpc = rpc;
      if (this.log.isLevelEnabled("debug")) this.log.debug({ host: this.host, port: this.port }, "connected");
      return rpc;
    } finally {
      timer[Symbol.dispose]();
    }
  }

  private unavailable(what: string, cause: unknown): StorageError {
    if (cause instanceof StorageError) return cause;
    const reason = cause instanceof Error ? cause.message : String(cause);
    return new StorageError(
      "UNAVAILABLE",
      `storage server ${this.serverId} at ${this.host}:${this.port}: ${what}: ${reason}`,
      {
        cause,
      },
    );
  }
}

/**
 * Authenticates an RPC connection to storage server `serverId` (the HELLO/PROVE handshake of
 * auth.ts). Throws StorageError: UNAUTHENTICATED if either side fails to prove the secret,
 * UNAVAILABLE if another server answers.
 */
export async function authenticate(
  rpc: RpcClient,
  secret: ClusterSecret,
  serverId: string,
  options: RpcExchangeOptions = {},
): Promise<void> {
  const clientNonce = newNonce();
  const hello = await exchange(rpc, "HELLO", { clientNonce }, serverId, options);
  checkServerHello(secret, serverId, clientNonce, hello);
  const clientProof = secret.clientProof(serverId, clientNonce, hello.serverNonce);
  await exchange(rpc, "PROVE", { clientProof }, serverId, options);
}

async function exchange<P extends StorageProcName>(
  rpc: RpcClient,
  name: P,
  args: Args<P>,
  serverId: string,
  options: RpcExchangeOptions,
): Promise<Result<P>> {
  const codec = CODECS[name];
  const reply = await rpc.call(
    STORAGE_PROGRAM,
    STORAGE_VERSION,
    codec.procedure,
    codec.encodeArgs(args),
    options,
  );
  return decodeReplyBody(codec, resultsOf(reply, serverId));
}

/** The results of an accepted reply; any other RPC answer as the StorageError it amounts to. */
function resultsOf(reply: RpcReply, serverId: string): XdrReader {
  switch (reply.kind) {
    case "success":
      return reply.results;
    case "auth-error":
      return fail("UNAUTHENTICATED", `refused the RPC credential (auth_stat ${reply.stat})`);
    case "garbage-args":
      return fail("INVALID", "found the arguments malformed");
    case "system-error":
      return fail("IO", "failed the call (SYSTEM_ERR)");
    default:
      return fail("UNAVAILABLE", `does not serve storage protocol v${STORAGE_VERSION} (${reply.kind})`);
  }
  function fail(code: "UNAUTHENTICATED" | "INVALID" | "IO" | "UNAVAILABLE", what: string): never {
    throw new StorageError(code, `storage server ${serverId} ${what}`);
  }
}
