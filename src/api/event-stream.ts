/**
 * GET /v1/events/stream: the event ring as Server-Sent Events. Each event is one message, `id:` its
 * sequence number and `data:` its record as JSON, so a client that reconnects with Last-Event-ID (or
 * ?since=) misses nothing the ring still holds; if the ring has already dropped some, a `missed`
 * message says which. Streams follow the store (a snapshot, then a watch, renewed when the watch
 * breaks), so they see events written by any node in any process.
 *
 * Bounded: at most STREAMS_MAX streams at once; a client that does not read (more than
 * STREAM_BUFFER_BYTES_MAX waiting) is cut off, and reconnects from its last id.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";
import { EVENTS_LOG_PREFIX, type EventRecord, eventRecordSchema } from "../cluster/event-record.ts";
import { readHead } from "../cluster/event-ring.ts";
import { decodeRecord } from "../storage/catalog.ts";
import { type CoordinationStore, followPrefix, type KeyValue } from "../store/index.ts";

export const STREAMS_MAX = 32;
const STREAM_BUFFER_BYTES_MAX = 1024 * 1024;
const HEARTBEAT_MS = 15_000;
/** What EventSource clients wait before reconnecting. */
const RECONNECT_MS = 2_000;

/** The message of one event (pure; exported for tests). */
export function eventMessage(record: EventRecord): string {
  return `id: ${record.seq}\ndata: ${JSON.stringify(record)}\n\n`;
}

export class EventStreams {
  private readonly store: CoordinationStore;
  private readonly log: Logger;
  private open = 0;

  constructor(store: CoordinationStore, log: Logger) {
    this.store = store;
    this.log = log;
  }

  get count(): number {
    return this.open;
  }

  /**
   * Streams events after `since` (undefined: from now on) until the client goes away. False, with
   * nothing written, when STREAMS_MAX are open already.
   */
  async serve(
    request: IncomingMessage,
    response: ServerResponse,
    since: number | undefined,
  ): Promise<boolean> {
    if (this.open >= STREAMS_MAX) return false;
    this.open++;
    let heartbeat: NodeJS.Timeout | undefined;
    try {
      // Read before the head is written: a store that cannot be read is still an error answer.
      let last = since ?? (await readHead(this.store)).head.next - 1;
      response.writeHead(200, {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-cache",
        connection: "keep-alive",
      });
      response.write(`retry: ${RECONNECT_MS}\n\n`);
      const send = (text: string): void => {
        if (response.writableLength > STREAM_BUFFER_BYTES_MAX) {
          this.log.info({ buffered: response.writableLength }, "event stream: client not reading; cut off");
          response.destroy();
          return;
        }
        response.write(text);
      };
      const deliver = (records: EventRecord[]): void => {
        for (const record of records.sort((a, b) => a.seq - b.seq)) {
          if (record.seq <= last) continue;
          if (record.seq > last + 1)
            send(`event: missed\ndata: ${JSON.stringify({ from: last + 1, to: record.seq - 1 })}\n\n`);
          last = record.seq;
          send(eventMessage(record));
        }
      };
      const closed = new Promise<void>((resolve) => response.once("close", resolve));
      heartbeat = setInterval(() => send(": keep-alive\n\n"), HEARTBEAT_MS);
      const follower = await followPrefix(
        this.store,
        EVENTS_LOG_PREFIX,
        {
          onSnapshot: (kvs) => deliver(decodeEvents(kvs)),
          onEvent: (event) => {
            if (event.type === "put") deliver(decodeEvents([event.kv]));
          },
        },
        this.log,
      );
      await closed;
      await follower.close();
    } finally {
      clearInterval(heartbeat);
      this.open--;
      if (response.headersSent && !response.writableEnded) response.end();
      if (!request.complete) request.resume();
    }
    return true;
  }
}

/** Records that do not parse are left out: the rest of the stream is still worth having. */
function decodeEvents(kvs: readonly KeyValue[]): EventRecord[] {
  return kvs.flatMap((kv) => {
    try {
      return [decodeRecord(eventRecordSchema, kv.key, kv.value)];
    } catch {
      return [];
    }
  });
}
