/**
 * The cluster's event record: what was decided (a failover, a move, a fence, a repair, a balancing
 * move), about what, by whom, and why, in words an operator can act on. The records live in the
 * coordination store as a bounded ring (event-ring.ts):
 *
 *   cluster/events/head             EventHead: the next sequence number and a count per kind/cause
 *   cluster/events/log/<seq>        EventRecord, the seq zero-padded so keys sort in order
 *
 * Every record is parsed with zod where it is read; everything in it is bounded, so a ring of
 * EVENTS_KEPT records stays within a few MiB whatever writes it.
 */
import { z } from "zod";

const EVENTS_ROOT = "cluster/events/";
export const EVENTS_HEAD_KEY = `${EVENTS_ROOT}head`;
export const EVENTS_LOG_PREFIX = `${EVENTS_ROOT}log/`;

/** How many events the ring keeps; older ones are deleted as new ones arrive. */
export const EVENTS_KEPT = 1000;
export const EVENT_REASON_CHARS_MAX = 512;
export const EVENT_SUBJECT_CHARS_MAX = 128;
export const EVENT_DETAILS_MAX = 16;
const DETAIL_CHARS_MAX = 128;
/** Distinct kind/cause pairs counted in the head; a cause past that counts as "<kind>/other". */
export const EVENT_COUNTS_MAX = 256;

export const EVENT_KINDS = [
  /** A node joined or lost its lease (as the master saw it). */
  "node",
  /** A vserver without a node got one. */
  "place",
  /** A vserver left a dead node. */
  "failover",
  /** A vserver left a live node: drain, lost reach, operator. */
  "move",
  /** A live move of a vserver's running service ended: moved, or rolled back. */
  "live-move",
  /** A vserver cannot be where the rules want it, and why. */
  "blocked",
  /** An owner of a vserver's volumes was fenced (or learned it was). */
  "fence",
  /** The storage tier declared a server dead or re-replicated chunks. */
  "repair",
  /** The storage balancer moved a chunk. */
  "balance",
] as const;
export const eventKindSchema = z.enum(EVENT_KINDS);
export type EventKind = z.infer<typeof eventKindSchema>;

/** A cause is a short slug ("node-dead", "drain", "forced-takeover"): a bounded metric label. */
export const EVENT_CAUSE_PATTERN = /^[a-z][a-z0-9-]{0,31}$/;

const detailValue = z.union([z.string().max(DETAIL_CHARS_MAX), z.number().finite(), z.null()]);

export const eventRecordSchema = z.object({
  seq: z.number().int().positive(),
  atMs: z.number().int().nonnegative(),
  kind: eventKindSchema,
  cause: z.string().regex(EVENT_CAUSE_PATTERN),
  /** What it is about: a vserver, node or storage server id, or "volume#chunk". */
  subject: z.string().min(1).max(EVENT_SUBJECT_CHARS_MAX),
  reason: z.string().min(1).max(EVENT_REASON_CHARS_MAX),
  /** Who decided: a node id (the master, the node that fenced), or "admin-api". */
  by: z.string().min(1).max(64),
  /** A few facts for scripts (from, to, generation, ...). */
  details: z
    .record(z.string().min(1).max(32), detailValue)
    .refine((d) => Object.keys(d).length <= EVENT_DETAILS_MAX, `at most ${EVENT_DETAILS_MAX} details`)
    .default({}),
});
export type EventRecord = z.infer<typeof eventRecordSchema>;

/** An event as its writer gives it; the ring gives it its sequence number. */
export type EventInput = Omit<EventRecord, "seq" | "details"> & {
  readonly details?: Readonly<Record<string, string | number | null>>;
};

export const eventHeadSchema = z.object({
  /** The sequence number the next event gets; the ring holds the EVENTS_KEPT before it at most. */
  next: z.number().int().positive(),
  /** Events ever recorded, by "kind/cause": for metrics, which must not go back when the ring trims. */
  counts: z
    .record(z.string().max(64), z.number().int().nonnegative())
    .refine((c) => Object.keys(c).length <= EVENT_COUNTS_MAX + EVENT_KINDS.length, "too many counts"),
});
export type EventHead = z.infer<typeof eventHeadSchema>;

export const EMPTY_HEAD: EventHead = { next: 1, counts: {} };

export function eventKey(seq: number): string {
  return `${EVENTS_LOG_PREFIX}${String(seq).padStart(16, "0")}`;
}

/** The sequence numbers an append of `count` events after `head` deletes to keep `kept`. */
export function evictedSeqs(next: number, count: number, kept: number = EVENTS_KEPT): number[] {
  const evicted: number[] = [];
  for (let seq = next; seq < next + count; seq++) if (seq - kept >= 1) evicted.push(seq - kept);
  return evicted;
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/**
 * The record an input becomes at `seq`: text clipped to its bound rather than refused (an event
 * too long to keep whole is still worth keeping), details beyond the bound dropped.
 */
export function toRecord(input: EventInput, seq: number): EventRecord {
  const details: Record<string, string | number | null> = {};
  for (const [key, value] of Object.entries(input.details ?? {}).slice(0, EVENT_DETAILS_MAX))
    details[clip(key, 32)] = typeof value === "string" ? clip(value, DETAIL_CHARS_MAX) : value;
  return eventRecordSchema.parse({
    seq,
    atMs: Math.max(0, Math.round(input.atMs)),
    kind: input.kind,
    cause: EVENT_CAUSE_PATTERN.test(input.cause) ? input.cause : "other",
    subject: clip(input.subject, EVENT_SUBJECT_CHARS_MAX),
    reason: clip(input.reason, EVENT_REASON_CHARS_MAX),
    by: clip(input.by, 64),
    details,
  });
}

/** The head after `records` were appended: the next seq past them, each counted under kind/cause. */
export function advanceHead(head: EventHead, records: readonly EventRecord[]): EventHead {
  const counts = { ...head.counts };
  for (const record of records) {
    let key = `${record.kind}/${record.cause}`;
    if (counts[key] === undefined && Object.keys(counts).length >= EVENT_COUNTS_MAX)
      key = `${record.kind}/other`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  const last = records.at(-1);
  return { next: last === undefined ? head.next : last.seq + 1, counts };
}
