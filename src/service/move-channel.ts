/**
 * The node-to-node channel a live move sends a vserver's service-state pages over: TCP, opened by a
 * mutual challenge-response on the cluster secret (each side proves it holds the secret over the
 * other's fresh nonce), and every later frame carries an HMAC under a key derived from both nonces,
 * so frames can be neither forged nor replayed into another session.
 *
 * Frame: u32 total length | u32 header length | header (JSON) | payload | 32-byte HMAC (after auth).
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { connect, createServer, type Server, type Socket } from "node:net";
import type { Logger } from "pino";
import { z } from "zod";
import { assert } from "../util/assert.ts";
import { ARENA_PAGE_BYTES } from "./arena.ts";

const FRAME_BYTES_MAX = ARENA_PAGE_BYTES + 64 * 1024;
const MAC_BYTES = 32;
const NONCE_BYTES = 32;
const PROTOCOL = "flotilla-move-v1";
export const MOVE_CONNECT_TIMEOUT_MS = 2_000;
/** How long one request on the channel may wait for its answer. */
export const MOVE_REPLY_TIMEOUT_MS = 10_000;

const base64 = z.string().max(128);
const manifestSchema = z.object({
  tag: z.number().int().nonnegative(),
  nextSeq: z.number().int().positive(),
  pages: z.array(z.number().int().positive()).max(1 << 20),
});
export type MoveManifest = z.infer<typeof manifestSchema>;

const offerSchema = z.object({
  type: z.literal("offer"),
  vserverId: z.string().max(64),
  tag: z.number().int().nonnegative(),
  generation: z.number().int().nonnegative(),
  /** The live move's request id: the cutover's placement names it, and only then is the state used. */
  moveId: z.string().min(1).max(64),
  from: z.string().max(64),
  pages: z.number().int().nonnegative(),
  liveBytes: z.number().int().nonnegative(),
});
export type MoveOffer = Omit<z.infer<typeof offerSchema>, "type">;

const headerSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("hello"), nonce: base64 }),
  z.object({ type: z.literal("auth"), nonce: base64, mac: base64 }),
  z.object({ type: z.literal("welcome"), mac: base64 }),
  offerSchema,
  z.object({ type: z.literal("accept") }),
  z.object({ type: z.literal("refuse"), reason: z.string().max(1024) }),
  z.object({ type: z.literal("page"), page: z.number().int().positive() }),
  z.object({ type: z.literal("final"), manifest: manifestSchema }),
  z.object({ type: z.literal("staged"), pages: z.number().int().nonnegative() }),
  z.object({ type: z.literal("failed"), reason: z.string().max(1024) }),
  z.object({ type: z.literal("abort") }),
]);
type Header = z.infer<typeof headerSchema>;

interface Frame {
  readonly header: Header;
  readonly payload: Uint8Array;
}

const mac = (key: Uint8Array, ...parts: (string | Uint8Array)[]): Buffer => {
  const h = createHmac("sha256", key);
  for (const part of parts) h.update(part);
  return h.digest();
};

/** One authenticated connection, either side: frames in order, each checked. */
class Session {
  private readonly socket: Socket;
  private buffered: Buffer = Buffer.alloc(0);
  private readonly queue: Frame[] = [];
  private waiter: { resolve: (f: Frame) => void; reject: (e: Error) => void } | undefined;
  private failure: Error | undefined;
  private sessionKey: Uint8Array | undefined;

  constructor(socket: Socket) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.take(chunk));
    socket.on("error", (error) => this.fail(error));
    socket.on("close", () => this.fail(new Error("the move channel closed")));
  }

  authenticated(key: Uint8Array): void {
    this.sessionKey = key;
  }

  send(header: Header, payload: Uint8Array = new Uint8Array(0)): Promise<void> {
    const head = Buffer.from(JSON.stringify(header), "utf8");
    const key = this.sessionKey;
    const total = 4 + head.length + payload.length + (key === undefined ? 0 : MAC_BYTES);
    assert(total + 4 <= FRAME_BYTES_MAX, "a move frame fits its bound");
    const prefix = Buffer.alloc(8);
    prefix.writeUInt32BE(total, 0);
    prefix.writeUInt32BE(head.length, 4);
    const parts: Uint8Array[] = [prefix, head, payload];
    if (key !== undefined) parts.push(mac(key, prefix, head, payload));
    return new Promise((resolve, reject) => {
      this.socket.write(Buffer.concat(parts), (error) => (error ? reject(error) : resolve()));
    });
  }

  /** The next frame, within `timeoutMs`. */
  next(timeoutMs = MOVE_REPLY_TIMEOUT_MS): Promise<Frame> {
    const ready = this.queue.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new Error(`no answer on the move channel within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiter = {
        resolve: (f) => {
          clearTimeout(timer);
          resolve(f);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private take(chunk: Buffer): void {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    while (this.buffered.length >= 4) {
      const total = this.buffered.readUInt32BE(0);
      if (total < 4 || total + 4 > FRAME_BYTES_MAX) {
        this.fail(new Error(`a move frame of ${total} bytes`));
        return;
      }
      if (this.buffered.length < total + 4) return;
      const frame = this.buffered.subarray(0, total + 4);
      this.buffered = this.buffered.subarray(total + 4);
      try {
        this.deliver(this.parse(frame));
      } catch (error) {
        this.fail(error instanceof Error ? error : new Error(String(error)));
        return;
      }
    }
  }

  private parse(frame: Buffer): Frame {
    const key = this.sessionKey;
    const headBytes = frame.readUInt32BE(4);
    const end = frame.length - (key === undefined ? 0 : MAC_BYTES);
    if (8 + headBytes > end) throw new Error("a malformed move frame");
    if (key !== undefined) {
      const expected = mac(
        key,
        frame.subarray(0, 8),
        frame.subarray(8, 8 + headBytes),
        frame.subarray(8 + headBytes, end),
      );
      if (!timingSafeEqual(expected, frame.subarray(end))) throw new Error("a move frame failed its HMAC");
    }
    const header = headerSchema.parse(JSON.parse(frame.subarray(8, 8 + headBytes).toString("utf8")));
    return { header, payload: new Uint8Array(frame.subarray(8 + headBytes, end)) };
  }

  private deliver(frame: Frame): void {
    const waiter = this.waiter;
    if (waiter !== undefined) {
      this.waiter = undefined;
      waiter.resolve(frame);
    } else if (this.queue.length < 4096) this.queue.push(frame);
    else this.fail(new Error("too many unread move frames"));
  }

  private fail(error: Error): void {
    if (this.failure !== undefined) return;
    this.failure = error;
    this.waiter?.reject(error);
    this.waiter = undefined;
    this.socket.destroy();
  }
}

function sessionKeyOf(secret: Uint8Array, serverNonce: Uint8Array, clientNonce: Uint8Array): Buffer {
  return mac(secret, PROTOCOL, " session ", serverNonce, clientNonce);
}

/** What the receiving node does with offers and the states that arrive. */
export interface MoveReceiverHandlers {
  /** A reason to refuse the offer, or undefined to take it. */
  check(offer: MoveOffer): string | undefined;
  /** The pages arrived completely: build the state (throws if they do not check), keep it for the start. */
  stage(offer: MoveOffer, manifest: MoveManifest, images: ReadonlyMap<number, Uint8Array>): void;
}

/** The receiving side: listens for moves from other nodes. */
export class MoveListener implements AsyncDisposable {
  private readonly server: Server;
  private readonly sessions = new Set<Session>();
  private readonly secret: Uint8Array;
  private readonly handlers: MoveReceiverHandlers;
  private readonly log: Logger;
  address = "";

  private constructor(secret: Uint8Array, handlers: MoveReceiverHandlers, log: Logger) {
    this.secret = secret;
    this.handlers = handlers;
    this.log = log.child({ component: "move-listener" });
    this.server = createServer((socket) => void this.serve(socket));
  }

  static async listen(
    host: string,
    secret: Uint8Array,
    handlers: MoveReceiverHandlers,
    log: Logger,
  ): Promise<MoveListener> {
    assert(secret.length >= 16, "the cluster secret is at least 16 bytes");
    const listener = new MoveListener(secret, handlers, log);
    await new Promise<void>((resolve, reject) => {
      listener.server.once("error", reject);
      listener.server.listen({ host, port: 0 }, () => resolve());
    });
    const bound = listener.server.address();
    assert(bound !== null && typeof bound === "object", "a TCP server has an address");
    listener.address = `${bound.address}:${bound.port}`;
    return listener;
  }

  private async serve(socket: Socket): Promise<void> {
    const session = new Session(socket);
    this.sessions.add(session);
    let offer: MoveOffer | undefined;
    const images = new Map<number, Uint8Array>();
    try {
      const serverNonce = randomBytes(NONCE_BYTES);
      await session.send({ type: "hello", nonce: serverNonce.toString("base64") });
      const auth = (await session.next()).header;
      if (auth.type !== "auth") throw new Error("the peer did not authenticate");
      const clientNonce = Buffer.from(auth.nonce, "base64");
      const expected = mac(this.secret, PROTOCOL, " client ", serverNonce, clientNonce);
      const given = Buffer.from(auth.mac, "base64");
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
        this.log.warn({ peer: socket.remoteAddress }, "a move channel peer failed authentication");
        return;
      }
      await session.send({
        type: "welcome",
        mac: mac(this.secret, PROTOCOL, " server ", clientNonce, serverNonce).toString("base64"),
      });
      session.authenticated(sessionKeyOf(this.secret, serverNonce, clientNonce));
      for (;;) {
        const { header, payload } = await session.next(60_000);
        if (header.type === "offer") {
          const { type: _, ...rest } = header;
          const reason = this.handlers.check(rest);
          if (reason !== undefined) {
            await session.send({ type: "refuse", reason });
            return;
          }
          offer = rest;
          await session.send({ type: "accept" });
        } else if (header.type === "page") {
          if (offer === undefined) throw new Error("a page before an offer");
          if (!images.has(header.page) && images.size >= offer.pages + 4096)
            throw new Error("more pages than offered");
          images.set(header.page, payload);
        } else if (header.type === "final") {
          if (offer === undefined) throw new Error("a final copy before an offer");
          try {
            this.handlers.stage(offer, header.manifest, images);
          } catch (error) {
            await session.send({
              type: "failed",
              reason: error instanceof Error ? error.message : String(error),
            });
            return;
          }
          await session.send({ type: "staged", pages: header.manifest.pages.length });
          return;
        } else if (header.type === "abort") return;
        else throw new Error(`unexpected ${header.type} on the move channel`);
      }
    } catch (error) {
      this.log.warn({ err: error, vserverId: offer?.vserverId }, "live move receive ended");
    } finally {
      this.sessions.delete(session);
      session.close();
    }
  }

  async close(): Promise<void> {
    for (const session of this.sessions) session.close();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** The sending side of one move. */
export class MoveSender {
  private readonly session: Session;
  pagesSent = 0;
  bytesSent = 0;

  private constructor(session: Session) {
    this.session = session;
  }

  /** Connects to `address` (host:port) and authenticates both ways. */
  static async open(address: string, secret: Uint8Array): Promise<MoveSender> {
    const at = address.lastIndexOf(":");
    const host = address.slice(0, at);
    const port = Number(address.slice(at + 1));
    if (at <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535)
      throw new Error(`not a move address: ${address}`);
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = connect({ host, port });
      const timer = setTimeout(() => {
        s.destroy();
        reject(new Error(`could not reach ${address} within ${MOVE_CONNECT_TIMEOUT_MS} ms`));
      }, MOVE_CONNECT_TIMEOUT_MS);
      s.once("connect", () => {
        clearTimeout(timer);
        resolve(s);
      });
      s.once("error", (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
    const session = new Session(socket);
    try {
      const hello = (await session.next()).header;
      if (hello.type !== "hello") throw new Error("the move peer did not greet");
      const serverNonce = Buffer.from(hello.nonce, "base64");
      const clientNonce = randomBytes(NONCE_BYTES);
      await session.send({
        type: "auth",
        nonce: clientNonce.toString("base64"),
        mac: mac(secret, PROTOCOL, " client ", serverNonce, clientNonce).toString("base64"),
      });
      const welcome = (await session.next()).header;
      const expected = mac(secret, PROTOCOL, " server ", clientNonce, serverNonce);
      const given = welcome.type === "welcome" ? Buffer.from(welcome.mac, "base64") : Buffer.alloc(0);
      if (given.length !== expected.length || !timingSafeEqual(given, expected))
        throw new Error(`the move peer at ${address} did not prove the cluster secret`);
      session.authenticated(sessionKeyOf(secret, serverNonce, clientNonce));
    } catch (error) {
      session.close();
      throw error;
    }
    return new MoveSender(session);
  }

  /** Offers the vserver; resolves with the refusal's reason, or undefined when accepted. */
  async offer(offer: MoveOffer): Promise<string | undefined> {
    await this.session.send({ type: "offer", ...offer });
    const answer = (await this.session.next()).header;
    if (answer.type === "accept") return undefined;
    if (answer.type === "refuse") return answer.reason;
    throw new Error(`unexpected ${answer.type} after an offer`);
  }

  async page(page: number, image: Uint8Array): Promise<void> {
    await this.session.send({ type: "page", page }, image);
    this.pagesSent++;
    this.bytesSent += image.length;
  }

  /** Sends the manifest; resolves once the target has built and checked the state. */
  async final(manifest: MoveManifest): Promise<void> {
    await this.session.send({ type: "final", manifest });
    const answer = (await this.session.next()).header;
    if (answer.type === "staged") return;
    if (answer.type === "failed") throw new Error(`the target could not take the state: ${answer.reason}`);
    throw new Error(`unexpected ${answer.type} after the final copy`);
  }

  abort(): void {
    void this.session
      .send({ type: "abort" })
      .catch(() => undefined)
      .finally(() => this.session.close());
  }

  close(): void {
    this.session.close();
  }
}
