import { getRandomValues } from "node:crypto";
import { connect, type Socket } from "node:net";
import { type Logger, pino } from "pino";
import { type Clock, systemClock } from "../util/clock.ts";
import { XdrError } from "../xdr/index.ts";
import { decodeReply, encodeCall, type OpaqueAuth, type RpcReply } from "./message.ts";
import { afterDelay } from "./one-shot.ts";
import { encodeRecord, RecordDecoder, RecordMarkingError } from "./record-marking.ts";
import { type Credential, RPC_RECORD_BYTES_MAX } from "./types.ts";

/** Calls one client may have outstanding; beyond it `call` refuses (the caller is not pacing itself). */
export const RPC_CLIENT_OUTSTANDING_MAX = 4096;
export const RPC_CLIENT_TIMEOUT_MS = 60_000;

export type RpcClientErrorCode =
  | "TIMEOUT"
  | "CONNECTION_CLOSED"
  | "BAD_REPLY"
  | "TOO_MANY_CALLS"
  | "XID_IN_USE";

/** A call that got no reply, or a connection that failed. */
export class RpcClientError extends Error {
  override name = "RpcClientError";
  readonly code: RpcClientErrorCode;
  readonly xid: number | undefined;
  constructor(code: RpcClientErrorCode, message: string, options?: { xid?: number; cause?: unknown }) {
    super(`${code}: ${message}`, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.xid = options?.xid;
  }
}

export interface RpcClientOptions {
  readonly logger?: Logger;
  /** Default per-call timeout. */
  readonly timeoutMs?: number;
  /** Largest reply record accepted. */
  readonly recordBytesMax?: number;
  readonly clock?: Clock;
}

export interface RpcExchangeOptions {
  /** Overrides the client's default timeout. */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

export interface RpcCallOptions extends RpcExchangeOptions {
  /** AUTH_NONE by default; an OpaqueAuth sends any flavor and body as it is. */
  readonly credential?: Credential | OpaqueAuth;
  /** A chosen xid (to replay a call); by default the next of a process-wide sequence. */
  readonly xid?: number;
  /** AUTH_NONE by default; another flavor provokes AUTH_ERROR(BADVERF). */
  readonly verifier?: OpaqueAuth;
  /** 2 by default; another value provokes RPC_MISMATCH. */
  readonly rpcVersion?: number;
}

interface Pending {
  readonly resolve: (reply: RpcReply) => void;
  readonly reject: (error: Error) => void;
  /** Clears the timer and the abort listener. */
  readonly cleanup: Disposable;
}

// xids come from one sequence per process, starting at a random point, so that clients of this
// process, and of other processes, do not collide in a server's duplicate request cache (keyed by
// client address and xid). A test that needs a particular xid passes it.
let nextXid = getRandomValues(new Uint32Array(1))[0] ?? 1;
function takeXid(): number {
  nextXid = (nextXid + 1) >>> 0;
  return nextXid;
}

/** An ONC RPC client over one TCP connection, for tests and tools: many calls outstanding, matched by xid. */
export class RpcClient implements AsyncDisposable {
  private readonly socket: Socket;
  private readonly decoder: RecordDecoder;
  private readonly pending = new Map<number, Pending>();
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly timeoutMs: number;
  private readonly closedPromise: Promise<void>;
  private closeReason: Error | undefined;
  private isClosed = false;
  private corked = false;

  private constructor(socket: Socket, options: RpcClientOptions) {
    this.socket = socket;
    this.log = (options.logger ?? pino({ level: "silent" })).child({ component: "rpc:client" });
    this.clock = options.clock ?? systemClock;
    this.timeoutMs = options.timeoutMs ?? RPC_CLIENT_TIMEOUT_MS;
    this.decoder = new RecordDecoder({ recordBytesMax: options.recordBytesMax ?? RPC_RECORD_BYTES_MAX });
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("error", (error) => {
      this.closeReason ??= error;
      this.log.debug({ err: error }, "socket error");
    });
    this.closedPromise = new Promise((resolve) => {
      socket.once("close", () => {
        this.isClosed = true;
        const reason = this.closeReason;
        this.failAll(
          reason instanceof RpcClientError
            ? reason
            : new RpcClientError("CONNECTION_CLOSED", "connection closed", { cause: reason }),
        );
        resolve();
      });
    });
  }

  /** `signal` abandons the attempt (a connect to a silent host otherwise waits for the OS, minutes). */
  static connect(
    host: string,
    port: number,
    options: RpcClientOptions & { readonly signal?: AbortSignal } = {},
  ): Promise<RpcClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host, port });
      const onAbort = () => {
        socket.destroy();
        reject(options.signal?.reason);
      };
      if (options.signal?.aborted) return onAbort();
      options.signal?.addEventListener("abort", onAbort, { once: true });
      const onError = (error: Error) => {
        options.signal?.removeEventListener("abort", onAbort);
        reject(error);
      };
      socket.once("error", onError);
      socket.once("connect", () => {
        options.signal?.removeEventListener("abort", onAbort);
        socket.off("error", onError);
        resolve(new RpcClient(socket, options));
      });
    });
  }

  /** True once the connection is closed, by either side. */
  get closed(): boolean {
    return this.isClosed;
  }

  get outstandingCount(): number {
    return this.pending.size;
  }

  /** Sends a call and resolves with its reply, whatever its status; rejects with RpcClientError. */
  call(
    program: number,
    version: number,
    procedure: number,
    args: Uint8Array | readonly Uint8Array[],
    options: RpcCallOptions = {},
  ): Promise<RpcReply> {
    const xid = options.xid ?? takeXid();
    const message = encodeCall(
      {
        xid,
        program,
        version,
        procedure,
        credential: options.credential,
        verifier: options.verifier,
        rpcVersion: options.rpcVersion,
      },
      args instanceof Uint8Array ? [args] : args,
    );
    return this.exchange(xid, encodeRecord(message), options);
  }

  /**
   * Sends `bytes` exactly as given (record marking included: several fragments, odd lengths) and
   * resolves with the reply to `xid`, the xid the bytes carry.
   */
  callRaw(xid: number, bytes: Uint8Array, options: RpcExchangeOptions = {}): Promise<RpcReply> {
    return this.exchange(xid, [bytes], options);
  }

  private exchange(
    xid: number,
    chunks: readonly Uint8Array[],
    options: RpcExchangeOptions,
  ): Promise<RpcReply> {
    if (this.isClosed)
      return Promise.reject(new RpcClientError("CONNECTION_CLOSED", "connection closed", { xid }));
    if (this.pending.has(xid)) {
      return Promise.reject(new RpcClientError("XID_IN_USE", `xid ${xid} is outstanding`, { xid }));
    }
    if (this.pending.size >= RPC_CLIENT_OUTSTANDING_MAX) {
      return Promise.reject(
        new RpcClientError("TOO_MANY_CALLS", `${this.pending.size} outstanding`, { xid }),
      );
    }
    return new Promise<RpcReply>((resolve, reject) => {
      const timeoutMs = options.timeoutMs ?? this.timeoutMs;
      const signal = options.signal;
      if (signal?.aborted) return reject(signal.reason);
      const timer = afterDelay(this.clock, timeoutMs, () => {
        this.settle(xid)?.reject(new RpcClientError("TIMEOUT", `no reply in ${timeoutMs} ms`, { xid }));
      });
      const onAbort = () => this.settle(xid)?.reject(signal?.reason);
      signal?.addEventListener("abort", onAbort, { once: true });
      const cleanup = {
        [Symbol.dispose]: () => {
          timer[Symbol.dispose]();
          signal?.removeEventListener("abort", onAbort);
        },
      };
      this.pending.set(xid, { resolve, reject, cleanup });
      this.write(chunks);
    });
  }

  /** Sends bytes as they are: hand-built records, broken framing, garbage. */
  sendRaw(bytes: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      this.socket.write(bytes, (error) => (error ? reject(error) : resolve()));
    });
  }

  /** Resolves when the connection has closed, whichever side closed it. */
  waitForClose(): Promise<void> {
    return this.closedPromise;
  }

  /** Closes the connection at once; outstanding calls fail with CONNECTION_CLOSED. */
  async close(): Promise<void> {
    this.socket.destroy();
    await this.closedPromise;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private write(chunks: readonly Uint8Array[]): void {
    // Calls made in the same tick leave in one writev.
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(this.uncork);
    }
    for (const chunk of chunks) this.socket.write(chunk);
  }

  private readonly uncork = (): void => {
    this.corked = false;
    this.socket.uncork();
  };

  private settle(xid: number): Pending | undefined {
    const pending = this.pending.get(xid);
    if (pending === undefined) return undefined;
    this.pending.delete(xid);
    pending.cleanup[Symbol.dispose]();
    return pending;
  }

  private failAll(error: RpcClientError): void {
    for (const xid of [...this.pending.keys()]) this.settle(xid)?.reject(error);
  }

  private onData(chunk: Buffer): void {
    this.decoder.push(chunk);
    try {
      for (let record = this.decoder.next(); record !== undefined; record = this.decoder.next()) {
        this.onRecord(record);
      }
    } catch (error) {
      if (!(error instanceof RecordMarkingError || error instanceof XdrError)) throw error;
      this.closeReason = new RpcClientError("BAD_REPLY", error.message, { cause: error });
      this.socket.destroy();
    }
  }

  private onRecord(record: Uint8Array): void {
    const reply = decodeReply(record);
    const pending = this.settle(reply.xid);
    if (pending === undefined) {
      // A reply after its call timed out or was aborted.
      this.log.debug({ xid: reply.xid }, "reply to no outstanding call");
      return;
    }
    pending.resolve(reply);
  }
}
