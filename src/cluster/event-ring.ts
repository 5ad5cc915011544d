/**
 * The event ring in the coordination store (keys in event-record.ts). An append is one transaction:
 * it compares the head's revision, puts the head one on, puts the new records and deletes the ones
 * that fall out of the ring; so writers in several processes never lose or reuse a sequence number,
 * and the ring never holds more than EVENTS_KEPT records, whoever crashed when.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { decodeRecord, encodeRecord } from "../storage/catalog.ts";
import type { CoordinationStore, TxnOp } from "../store/index.ts";
import {
  advanceHead,
  EMPTY_HEAD,
  EVENTS_HEAD_KEY,
  EVENTS_KEPT,
  EVENTS_LOG_PREFIX,
  type EventHead,
  type EventInput,
  type EventRecord,
  eventHeadSchema,
  eventKey,
  eventRecordSchema,
  evictedSeqs,
  toRecord,
} from "./event-record.ts";

/** Events per transaction: two operations each plus the head, well inside etcd's 128 per txn. */
export const EVENTS_PER_TXN_MAX = 32;
/** Appends that lose the race for the head before this one gives up (another writer is busy). */
const HEAD_RACES_MAX = 50;
const RACE_PAUSE_MS_MAX = 20;

export async function readHead(store: CoordinationStore): Promise<{ head: EventHead; modRevision: number }> {
  const kv = await store.get(EVENTS_HEAD_KEY);
  if (kv === undefined) return { head: EMPTY_HEAD, modRevision: 0 };
  return { head: decodeRecord(eventHeadSchema, EVENTS_HEAD_KEY, kv.value), modRevision: kv.modRevision };
}

/**
 * Appends up to EVENTS_PER_TXN_MAX events in order, as one transaction; returns them as recorded.
 * Throws the store's error (UNAVAILABLE, CLOSED) or, after many lost races, a plain Error.
 */
export async function appendEvents(
  store: CoordinationStore,
  inputs: readonly EventInput[],
  kept: number = EVENTS_KEPT,
): Promise<EventRecord[]> {
  if (inputs.length === 0) return [];
  if (inputs.length > EVENTS_PER_TXN_MAX)
    throw new RangeError(`at most ${EVENTS_PER_TXN_MAX} events per append, not ${inputs.length}`);
  for (let races = 0; races < HEAD_RACES_MAX; races++) {
    const { head, modRevision } = await readHead(store);
    const records = inputs.map((input, i) => toRecord(input, head.next + i));
    const ops: TxnOp[] = [
      { op: "put", key: EVENTS_HEAD_KEY, value: encodeRecord(eventHeadSchema, advanceHead(head, records)) },
      ...records.map(
        (record): TxnOp => ({
          op: "put",
          key: eventKey(record.seq),
          value: encodeRecord(eventRecordSchema, record),
        }),
      ),
      ...evictedSeqs(head.next, records.length, kept).map(
        (seq): TxnOp => ({ op: "delete", key: eventKey(seq) }),
      ),
    ];
    const result = await store.txn(
      [
        modRevision === 0
          ? { key: EVENTS_HEAD_KEY, target: "create", equals: 0 }
          : { key: EVENTS_HEAD_KEY, target: "mod", equals: modRevision },
      ],
      ops,
    );
    if (result.succeeded) return records;
    await sleep(Math.random() * RACE_PAUSE_MS_MAX);
  }
  throw new Error(`could not append ${inputs.length} events: ${HEAD_RACES_MAX} races for the head lost`);
}

export interface EventPage {
  readonly events: EventRecord[];
  /** The newest sequence number recorded so far (0: none yet). */
  readonly lastSeq: number;
  /** The oldest one the ring still holds (0: none); a `since` before it has missed some. */
  readonly oldestSeq: number;
  /** Records that did not parse (skipped, not fatal: the rest is still worth reading). */
  readonly malformed: number;
}

export const EVENTS_PAGE_MAX = EVENTS_KEPT;

/**
 * Events after `since` (oldest first, at most `limit`), or without `since` the newest `limit`.
 * Reads the whole ring: EVENTS_KEPT bounded records.
 */
export async function readEvents(
  store: CoordinationStore,
  options: { readonly since?: number; readonly limit: number },
): Promise<EventPage> {
  const [{ head }, { kvs }] = await Promise.all([readHead(store), store.range(EVENTS_LOG_PREFIX)]);
  const all: EventRecord[] = [];
  let malformed = 0;
  for (const kv of kvs) {
    try {
      all.push(decodeRecord(eventRecordSchema, kv.key, kv.value));
    } catch {
      malformed++;
    }
  }
  all.sort((a, b) => a.seq - b.seq);
  const limit = Math.max(0, Math.min(options.limit, EVENTS_PAGE_MAX));
  const { since } = options;
  const events =
    since === undefined
      ? all.slice(Math.max(0, all.length - limit))
      : all.filter((e) => e.seq > since).slice(0, limit);
  return { events, lastSeq: head.next - 1, oldestSeq: all[0]?.seq ?? 0, malformed };
}
