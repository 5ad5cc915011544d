import type { Socket } from "node:net";
import type { Logger } from "pino";
import { assert } from "../util/assert.ts";
import { POOLED_RECORD_BYTES_MIN, recordBuffers } from "./record-buffers.ts";
import { RecordDecoder, RecordMarkingError } from "./record-marking.ts";
import type { ClientAddress } from "./types.ts";

/** What to do once a record has been processed. */
export type RecordResult =
  /** A reply, record marking included. */
  | {
      readonly kind: "reply";
      readonly record: readonly Uint8Array[];
      /** Called once the record is with the kernel or dropped: its buffers may be reused then. */
      readonly sent?: () => void;
    }
  | { readonly kind: "none" }
  /** The stream makes no sense any more: drop the connection (and the replies still to come). */
  | { readonly kind: "close"; readonly reason: string };

export type ProcessRecord = (record: Uint8Array, connection: ServerConnection) => Promise<RecordResult>;

export interface ServerConnectionOptions {
  readonly id: number;
  readonly inFlightMax: number;
  readonly recordBytesMax: number;
  readonly fragmentsPerRecordMax: number;
  readonly process: ProcessRecord;
  readonly log: Logger;
}

/** A connection's state, for metrics, the admin API and tests of backpressure. */
export interface RpcConnectionStats {
  readonly connectionId: number;
  readonly client: ClientAddress;
  readonly inFlight: number;
  /** Received bytes not yet parsed into records. */
  readonly bufferedBytes: number;
  /** Reading is paused: the in-flight bound is reached or the socket's writes are backed up. */
  readonly readPaused: boolean;
  /** The last reply write returned false; no new call starts until 'drain'. */
  readonly writeBlocked: boolean;
  /** Bytes received and sent on the socket so far. */
  readonly bytesRead: number;
  readonly bytesWritten: number;
}

/** "::ffff:10.0.0.1" (an IPv4 client of a dual-stack socket) is 10.0.0.1 to export rules and caches. */
export function normalizeAddress(address: string | undefined): string {
  if (address === undefined) return "";
  return address.startsWith("::ffff:") && address.includes(".") ? address.slice("::ffff:".length) : address;
}

/**
 * One client connection: reads records while its in-flight work is under the bound and its socket
 * is not backed up, starts each, and writes each reply as it completes (in any order).
 */
export class ServerConnection {
  readonly id: number;
  readonly client: ClientAddress;
  private readonly socket: Socket;
  private readonly decoder: RecordDecoder;
  private readonly options: ServerConnectionOptions;
  private readonly log: Logger;
  private inFlight = 0;
  private writeBlocked = false;
  private paused = false;
  private readEnded = false;
  private closing = false;
  private ended = false;
  private corked = false;
  /** Resolves once the socket is fully closed. */
  readonly closed: Promise<void>;

  constructor(socket: Socket, options: ServerConnectionOptions) {
    this.id = options.id;
    this.socket = socket;
    this.options = options;
    this.client = { address: normalizeAddress(socket.remoteAddress), port: socket.remotePort ?? 0 };
    this.log = options.log.child({ connectionId: options.id, client: this.client.address });
    this.decoder = new RecordDecoder({
      recordBytesMax: options.recordBytesMax,
      fragmentsPerRecordMax: options.fragmentsPerRecordMax,
      pool: recordBuffers,
      pooledBytesMin: POOLED_RECORD_BYTES_MIN,
    });
    this.closed = new Promise((resolve) => socket.once("close", () => resolve()));
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("end", () => this.onEnd());
    socket.on("drain", () => this.onDrain());
    // ECONNRESET and the like: 'close' follows, which is all the connection needs to know.
    socket.on("error", (error) => this.log.debug({ err: error }, "socket error"));
  }

  get stats(): RpcConnectionStats {
    return {
      connectionId: this.id,
      client: this.client,
      inFlight: this.inFlight,
      bufferedBytes: this.decoder.bufferedBytes,
      readPaused: this.paused,
      writeBlocked: this.writeBlocked,
      bytesRead: this.socket.bytesRead,
      bytesWritten: this.socket.bytesWritten,
    };
  }

  /** Stops taking calls; the socket ends once the calls in flight have been answered. */
  startClosing(): void {
    if (this.closing) return;
    this.closing = true;
    // Keep reading (and discarding) so the client's FIN is seen and the socket can close.
    this.setPaused(false);
    this.endWhenIdle();
  }

  destroy(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    if (this.closing) return;
    this.decoder.push(chunk);
    this.pump();
  }

  private onEnd(): void {
    this.readEnded = true;
    // allowHalfOpen: the client may have sent its last call and shut down its side; answer first.
    if (this.closing) this.endWhenIdle();
    else this.pump();
  }

  private onDrain(): void {
    this.writeBlocked = false;
    if (this.closing) return;
    this.pump();
  }

  /** Starts the records already received, as far as the bounds allow; pauses reading beyond them. */
  private pump(): void {
    // A connection cut for a protocol violation still sees its in-flight calls finish: start nothing.
    if (this.socket.destroyed) return;
    while (!this.closing && !this.writeBlocked && this.inFlight < this.options.inFlightMax) {
      let record: Uint8Array | undefined;
      try {
        record = this.decoder.next();
      } catch (error) {
        if (!(error instanceof RecordMarkingError)) throw error;
        this.log.warn({ err: error }, "closing connection: record framing");
        this.socket.destroy();
        return;
      }
      if (record === undefined) {
        if (this.readEnded) this.endWhenIdle();
        else this.setPaused(false);
        return;
      }
      this.start(record);
    }
    if (!this.closing) this.setPaused(true);
  }

  private start(record: Uint8Array): void {
    this.inFlight++;
    this.options.process(record, this).then(
      (result) => this.finish(result),
      (error: unknown) => {
        // process answers every failure it expects; this is a bug, but one connection's, not the server's.
        this.log.error({ err: error }, "record processing failed");
        this.finish({ kind: "close", reason: "internal error" });
      },
    );
  }

  private finish(result: RecordResult): void {
    this.inFlight--;
    assert(this.inFlight >= 0, "in-flight count went negative");
    if (result.kind === "reply") this.write(result.record, result.sent);
    if (result.kind === "close") {
      this.log.warn({ reason: result.reason }, "closing connection");
      this.socket.destroy();
      return;
    }
    // While closing nothing new starts; otherwise pump, which also ends a half-closed connection once idle.
    if (this.closing) this.endWhenIdle();
    else this.pump();
  }

  private write(record: readonly Uint8Array[], sent: (() => void) | undefined): void {
    // A reply for a client that has gone is dropped: it will retransmit on its next connection.
    if (this.socket.destroyed || this.ended) {
      sent?.();
      return;
    }
    // Replies that complete in the same tick leave in one writev: one system call, not one each.
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(this.uncork);
    }
    let accepted = true;
    const last = record.length - 1;
    for (let i = 0; i < last; i++) accepted = this.socket.write(record[i]!);
    // Node runs a write's callback once its bytes are with the kernel, or with the error that ended
    // the socket; the chunks before it of the same record are done by then too.
    if (last >= 0)
      accepted =
        sent === undefined
          ? this.socket.write(record[last]!)
          : this.socket.write(record[last]!, () => sent());
    if (!accepted) this.writeBlocked = true;
  }

  private readonly uncork = (): void => {
    this.corked = false;
    this.socket.uncork();
  };

  /** Ends the socket once nothing is in flight and (unless closing) nothing more can be read. */
  private endWhenIdle(): void {
    if (this.ended || this.inFlight > 0) return;
    if (!this.closing && !this.readEnded) return;
    this.ended = true;
    this.socket.end();
  }

  private setPaused(paused: boolean): void {
    if (this.paused === paused || this.socket.destroyed) return;
    this.paused = paused;
    if (paused) this.socket.pause();
    else this.socket.resume();
  }
}
