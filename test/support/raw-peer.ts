import { connect, type Socket } from "node:net";
import { decodeReply, RecordDecoder, type RpcReply } from "../../src/rpc/index.ts";

/**
 * A bare TCP peer of an RPC server: it writes whatever it is given, can stop reading, half-close,
 * and collects the replies it reads. For what RpcClient deliberately never does.
 */
export class RawPeer {
  readonly socket: Socket;
  readonly replies: RpcReply[] = [];
  /** Records that did not decode as replies (a test expects none). */
  readonly malformed: Uint8Array[] = [];
  readonly closed: Promise<void>;
  /** The server sent FIN (it ended its side). */
  ended = false;
  private readonly decoder = new RecordDecoder({ recordBytesMax: 64 * 1024 * 1024 });
  private watchers: (() => void)[] = [];

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("end", () => {
      this.ended = true;
      this.changed();
    });
    // A reset by the server is an expected way for these tests to end.
    socket.on("error", () => {});
    this.closed = new Promise((resolve) =>
      socket.once("close", () => {
        resolve();
        this.changed();
      }),
    );
  }

  static connect(
    port: number,
    host = "127.0.0.1",
    options: { allowHalfOpen?: boolean } = {},
  ): Promise<RawPeer> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host, port, allowHalfOpen: options.allowHalfOpen ?? false });
      socket.once("error", reject);
      socket.once("connect", () => {
        socket.off("error", reject);
        resolve(new RawPeer(socket));
      });
    });
  }

  /** Writes `bytes`; resolves when Node has handed them on (or the socket failed). */
  send(bytes: Uint8Array): Promise<void> {
    return new Promise((resolve) => this.socket.write(bytes, () => resolve()));
  }

  /** Resolves once `count` replies have been read. */
  async untilReplies(count: number): Promise<void> {
    while (this.replies.length < count) {
      if (this.socket.destroyed) throw new Error(`closed after ${this.replies.length} of ${count} replies`);
      await new Promise<void>((resolve) => this.watchers.push(resolve));
    }
  }

  destroy(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    this.decoder.push(chunk);
    for (let record = this.decoder.next(); record !== undefined; record = this.decoder.next()) {
      try {
        this.replies.push(decodeReply(record));
      } catch {
        this.malformed.push(record);
      }
    }
    this.changed();
  }

  private changed(): void {
    for (const watcher of this.watchers.splice(0)) watcher();
  }
}

/** Waits, one event-loop turn at a time, until `condition` holds. The test's own timeout bounds it. */
export async function turnsUntil(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise<void>((resolve) => setImmediate(resolve));
}
