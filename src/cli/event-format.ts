/** Events as the `flotilla events` lines: time, kind, subject, reason; the cause and who decided after. */
import type { EventRecord } from "../cluster/event-record.ts";

const KIND_WIDTH = "live-move".length;
const SUBJECT_WIDTH = 12;

export function formatEvent(event: EventRecord): string {
  const time = new Date(event.atMs).toISOString().replace("T", " ").replace("Z", "");
  return `${time}  ${event.kind.padEnd(KIND_WIDTH)}  ${event.subject.padEnd(SUBJECT_WIDTH)}  ${event.reason}  [${event.cause}, by ${event.by}, #${event.seq}]`;
}

/** What a `missed` stream message says: the ring dropped events before this client read them. */
export function formatMissed(from: number, to: number): string {
  const count = to - from + 1;
  return `(${count} event${count === 1 ? "" : "s"} #${from}-#${to} left the ring before they could be read)`;
}
