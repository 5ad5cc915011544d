/**
 * Where deciders hand their events: `recordEvents(store, inputs, log)` returns at once and the event
 * goes to the ring in the background, batched with others of this process. A decision never waits
 * for its event, and an event that cannot be written (the store away for long, the process ending)
 * is logged and dropped: events explain decisions, they are not part of them.
 *
 * One log per store object, so every node of a one-process cluster shares one writer and they do
 * not race each other for the ring's head.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { type Logger, pino } from "pino";
import type { TierEventSink } from "../storage/tier-events.ts";
import { type CoordinationStore, StoreError } from "../store/index.ts";
import type { EventInput } from "./event-record.ts";
import { appendEvents, EVENTS_PER_TXN_MAX } from "./event-ring.ts";

/** Events waiting to be written; past this the oldest waiting ones are dropped. */
export const EVENTS_PENDING_MAX = 4096;
const ATTEMPTS_MAX = 5;
const RETRY_MS_MIN = 100;

export class EventLog {
  private readonly store: CoordinationStore;
  private readonly pending: EventInput[] = [];
  private writing: Promise<void> | undefined;
  private log: Logger = pino({ level: "silent" });
  /** Events given up on (queue overflow, or the store refused them ATTEMPTS_MAX times). */
  dropped = 0;
  written = 0;

  constructor(store: CoordinationStore) {
    this.store = store;
  }

  emit(input: EventInput, log?: Logger): void {
    if (log !== undefined) this.log = log;
    this.pending.push(input);
    if (this.pending.length > EVENTS_PENDING_MAX) {
      const over = this.pending.length - EVENTS_PENDING_MAX;
      this.pending.splice(0, over);
      this.dropped += over;
    }
    this.writing ??= this.drain().finally(() => {
      this.writing = undefined;
    });
  }

  /** Resolves once every event emitted so far is written or given up on. */
  async flush(): Promise<void> {
    while (this.writing !== undefined) await this.writing;
  }

  private async drain(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0, EVENTS_PER_TXN_MAX);
      if (!(await this.write(batch))) {
        this.dropped += batch.length;
        this.log.warn(
          { events: batch.length, kinds: [...new Set(batch.map((e) => e.kind))] },
          "events could not be recorded; dropped",
        );
      }
    }
  }

  private async write(batch: readonly EventInput[]): Promise<boolean> {
    for (let attempt = 1; attempt <= ATTEMPTS_MAX; attempt++) {
      try {
        await appendEvents(this.store, batch);
        this.written += batch.length;
        return true;
      } catch (error) {
        if (error instanceof StoreError && error.code === "CLOSED") return false;
        this.log.debug({ err: error, attempt }, "recording events failed; retrying");
        await sleep(RETRY_MS_MIN * 2 ** attempt, undefined, { ref: false });
      }
    }
    return false;
  }
}

const logs = new WeakMap<CoordinationStore, EventLog>();

export function eventLogOf(store: CoordinationStore): EventLog {
  let log = logs.get(store);
  if (log === undefined) {
    log = new EventLog(store);
    logs.set(store, log);
  }
  return log;
}

/** Records events in the background, in order (see the top of this file). */
export function recordEvents(store: CoordinationStore, inputs: readonly EventInput[], log?: Logger): void {
  const events = eventLogOf(store);
  for (const input of inputs) events.emit(input, log);
}

/** The storage tier's decisions, recorded as events decided by `by` (a node id, or "admin-api"). */
export function tierEventSink(store: CoordinationStore, by: string, log?: Logger): TierEventSink {
  return (event) => recordEvents(store, [{ ...event, atMs: Date.now(), by }], log);
}
