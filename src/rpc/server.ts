import { createServer, type Server, type Socket } from "node:net";
import { type Logger, pino } from "pino";
import { assert } from "../util/assert.ts";
import { type Clock, systemClock } from "../util/clock.ts";
import { XdrError } from "../xdr/index.ts";
import { decodeCall, encodeReplyRecord } from "./message.ts";
import { afterDelay } from "./one-shot.ts";
import { ProgramRegistry } from "./program-registry.ts";
import { recordBuffers } from "./record-buffers.ts";
import {
  normalizeAddress,
  type RecordResult,
  type RpcConnectionStats,
  ServerConnection,
} from "./server-connection.ts";
import {
  RPC_FRAGMENTS_PER_RECORD_MAX,
  RPC_IN_FLIGHT_PER_CONNECTION_MAX,
  RPC_RECORD_BYTES_MAX,
  type RpcCall,
  type RpcHandler,
  type RpcOutcome,
  type RpcProgram,
} from "./types.ts";

/** Connections one server holds at once; beyond it new ones are closed on accept. */
export const RPC_CONNECTIONS_MAX = 4096;
/** How long close() waits for calls in flight before it cuts the connections. */
export const RPC_CLOSE_TIMEOUT_MS = 10_000;

export interface RpcServerOptions {
  readonly programs: readonly RpcProgram[];
  readonly logger?: Logger;
  readonly inFlightPerConnectionMax?: number;
  /** Names the server in logs ("nfs", "portmap"). */
  readonly name?: string;
  readonly connectionsMax?: number;
  readonly closeTimeoutMs?: number;
  readonly recordBytesMax?: number;
  readonly clock?: Clock;
  /** Called once a connection has closed, so programs can drop state they keep per connection. */
  readonly onConnectionClosed?: (connectionId: number) => void;
}

const SYSTEM_ERROR: RpcOutcome = { kind: "system-error" };
const GARBAGE_ARGS: RpcOutcome = { kind: "garbage-args" };
const NO_REPLY: RecordResult = { kind: "none" };

/**
 * ONC RPC v2 over TCP (RFC 5531): record marking, authentication (AUTH_NONE, AUTH_SYS), dispatch to
 * the programs it holds, many calls in flight per connection answered as they complete.
 */
export class RpcServer implements AsyncDisposable {
  private readonly registry = new ProgramRegistry();
  private readonly connections = new Set<ServerConnection>();
  private readonly server: Server;
  private readonly log: Logger;
  private readonly inFlightMax: number;
  private readonly recordBytesMax: number;
  private readonly closeTimeoutMs: number;
  private readonly clock: Clock;
  private readonly onConnectionClosed: ((connectionId: number) => void) | undefined;
  private nextConnectionId = 1;
  private readonly closedBytes = { in: 0, out: 0 };
  private listening = false;
  private closing: Promise<void> | undefined;

  constructor(options: RpcServerOptions) {
    this.log = (options.logger ?? pino({ level: "silent" })).child({
      component: "rpc",
      server: options.name ?? "rpc",
    });
    this.inFlightMax = options.inFlightPerConnectionMax ?? RPC_IN_FLIGHT_PER_CONNECTION_MAX;
    this.recordBytesMax = options.recordBytesMax ?? RPC_RECORD_BYTES_MAX;
    this.closeTimeoutMs = options.closeTimeoutMs ?? RPC_CLOSE_TIMEOUT_MS;
    this.clock = options.clock ?? systemClock;
    this.onConnectionClosed = options.onConnectionClosed;
    assert(Number.isInteger(this.inFlightMax) && this.inFlightMax >= 1, "inFlightPerConnectionMax >= 1");
    for (const program of options.programs) this.registry.add(program);
    // allowHalfOpen: a client that sends its calls and shuts down its side still gets the replies.
    this.server = createServer({ allowHalfOpen: true }, (socket) => this.accept(socket));
    this.server.maxConnections = options.connectionsMax ?? RPC_CONNECTIONS_MAX;
    this.server.on("drop", (data) => {
      this.log.warn({ client: normalizeAddress(data?.remoteAddress) }, "connection refused: too many");
    });
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Bytes received and sent since the server started, over every connection, open or closed. */
  networkBytes(): { in: number; out: number } {
    let bytesIn = this.closedBytes.in;
    let bytesOut = this.closedBytes.out;
    for (const connection of this.connections) {
      const { bytesRead, bytesWritten } = connection.stats;
      bytesIn += bytesRead;
      bytesOut += bytesWritten;
    }
    return { in: bytesIn, out: bytesOut };
  }

  connectionStats(): RpcConnectionStats[] {
    return [...this.connections].map((connection) => connection.stats);
  }

  addProgram(program: RpcProgram): void {
    this.registry.add(program);
  }

  /** Starts listening; port 0 takes any free port. Resolves with the address actually bound. */
  async listen(host: string, port: number): Promise<{ address: string; port: number }> {
    assert(!this.listening && this.closing === undefined, "listen is called once");
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen({ host, port }, () => {
        this.server.off("error", reject);
        resolve();
      });
    });
    this.listening = true;
    this.server.on("error", (error) => this.log.error({ err: error }, "server error"));
    const bound = this.server.address();
    assert(bound !== null && typeof bound === "object", "a TCP server has an address");
    this.log.info({ address: bound.address, port: bound.port }, "listening");
    return { address: bound.address, port: bound.port };
  }

  /**
   * Stops accepting, lets the calls in flight finish and their replies go out, then closes every
   * connection; after closeTimeoutMs (or `timeoutMs`) the connections still open are cut.
   */
  close(timeoutMs = this.closeTimeoutMs): Promise<void> {
    this.closing ??= this.closeNow(timeoutMs);
    return this.closing;
  }

  /**
   * Stops at once, as a crash would: no new connection is accepted and every open one is cut, with
   * calls in flight left unanswered (their clients retransmit elsewhere). For a node that has lost
   * its right to serve, and for fault injection.
   */
  abort(): Promise<void> {
    if (this.closing === undefined) {
      const open = [...this.connections];
      this.closing = (async () => {
        if (!this.listening) return;
        const serverClosed = new Promise<void>((resolve) => this.server.close(() => resolve()));
        for (const connection of open) connection.destroy();
        await serverClosed;
        this.log.warn("aborted");
      })();
    } else {
      for (const connection of this.connections) connection.destroy();
    }
    return this.closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private async closeNow(timeoutMs: number): Promise<void> {
    if (!this.listening) return;
    const serverClosed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    const open = [...this.connections];
    for (const connection of open) connection.startClosing();
    const allClosed = Promise.all(open.map((connection) => connection.closed));
    let timedOut = false;
    await new Promise<void>((resolve) => {
      const timer = afterDelay(this.clock, timeoutMs, () => {
        timedOut = true;
        resolve();
      });
      void allClosed.then(() => {
        timer[Symbol.dispose]();
        resolve();
      });
    });
    if (timedOut) {
      this.log.warn({ connectionCount: this.connections.size }, "close timed out: cutting connections");
      for (const connection of this.connections) connection.destroy();
      await allClosed;
    }
    await serverClosed;
    this.log.info("closed");
  }

  private accept(socket: Socket): void {
    if (this.closing !== undefined) {
      socket.destroy();
      return;
    }
    const connection = new ServerConnection(socket, {
      id: this.nextConnectionId++,
      inFlightMax: this.inFlightMax,
      recordBytesMax: this.recordBytesMax,
      fragmentsPerRecordMax: RPC_FRAGMENTS_PER_RECORD_MAX,
      process: (record, from) => this.process(record, from),
      log: this.log,
    });
    this.connections.add(connection);
    if (this.log.isLevelEnabled("debug")) {
      this.log.debug({ connectionId: connection.id, client: connection.client }, "connection opened");
    }
    void connection.closed.then(() => {
      const { bytesRead, bytesWritten } = connection.stats;
      this.closedBytes.in += bytesRead;
      this.closedBytes.out += bytesWritten;
      this.connections.delete(connection);
      this.onConnectionClosed?.(connection.id);
      if (this.log.isLevelEnabled("debug"))
        this.log.debug({ connectionId: connection.id }, "connection closed");
    });
  }

  private async process(record: Uint8Array, connection: ServerConnection): Promise<RecordResult> {
    let released = false;
    const result = await this.processRecord(record, connection, () => {
      released = true;
    });
    // Only a pooled record is given back, once the handler has returned and said it keeps none of it.
    if (released && recordBuffers.lent(record)) recordBuffers.give(record);
    return result;
  }

  private async processRecord(
    record: Uint8Array,
    connection: ServerConnection,
    releaseArgs: () => void,
  ): Promise<RecordResult> {
    const decoded = decodeCall(record);
    switch (decoded.kind) {
      case "unparseable":
        return { kind: "close", reason: decoded.reason };
      case "rpc-mismatch":
        return { kind: "reply", record: encodeReplyRecord(decoded.xid, { kind: "rpc-mismatch" }) };
      case "auth-error":
        if (this.log.isLevelEnabled("debug")) {
          this.log.debug({ xid: decoded.xid, reason: decoded.reason }, "credential refused");
        }
        return { kind: "reply", record: encodeReplyRecord(decoded.xid, decoded) };
      case "call":
        break;
    }
    const resolution = this.registry.resolve(decoded.program, decoded.version, decoded.procedure);
    if (resolution.kind !== "handler") {
      return { kind: "reply", record: encodeReplyRecord(decoded.xid, resolution) };
    }
    const call: RpcCall = {
      xid: decoded.xid,
      program: decoded.program,
      version: decoded.version,
      procedure: decoded.procedure,
      credential: decoded.credential,
      args: decoded.args,
      client: connection.client,
      connectionId: connection.id,
      releaseArgs,
    };
    const outcome = await this.runHandler(resolution.handler, call, resolution.program.name);
    if (outcome.kind === "drop") return NO_REPLY;
    const reply = encodeReplyRecord(call.xid, outcome);
    return outcome.kind === "success" && outcome.sent !== undefined
      ? { kind: "reply", record: reply, sent: outcome.sent }
      : { kind: "reply", record: reply };
  }

  private async runHandler(handler: RpcHandler, call: RpcCall, programName: string): Promise<RpcOutcome> {
    try {
      return await handler(call);
    } catch (error) {
      const where = { program: programName, version: call.version, procedure: call.procedure, xid: call.xid };
      if (error instanceof XdrError) {
        if (this.log.isLevelEnabled("debug")) this.log.debug({ ...where, err: error }, "garbage arguments");
        return GARBAGE_ARGS;
      }
      this.log.error({ ...where, err: error }, "procedure failed");
      return SYSTEM_ERROR;
    }
  }
}
