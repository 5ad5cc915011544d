/**
 * The dashboard's event list: the newest events first, each once, at most EVENTS_SHOWN, merged
 * from the first page read and the live stream (which may repeat one after a reconnect). Pure.
 */
import type { EventRecord } from "../cluster/event-record.ts";
import { formatClock } from "./format.ts";
import { html, type SafeHtml } from "./html.ts";
import { table } from "./table.ts";

export const EVENTS_SHOWN = 200;

/** `events` (newest first) with `incoming` added: no sequence number twice, newest first, bounded. */
export function mergeEvents(events: readonly EventRecord[], incoming: readonly EventRecord[]): EventRecord[] {
  const bySeq = new Map<number, EventRecord>();
  for (const e of events) bySeq.set(e.seq, e);
  for (const e of incoming) bySeq.set(e.seq, e);
  return [...bySeq.values()].sort((a, b) => b.seq - a.seq).slice(0, EVENTS_SHOWN);
}

export function eventsTable(events: readonly EventRecord[]): SafeHtml {
  return table(
    [
      { title: "#", cell: (e) => e.seq },
      { title: "time", cell: (e) => formatClock(e.atMs) },
      { title: "kind", cell: (e) => html`<span class="kind">${e.kind}</span>` },
      { title: "subject", cell: (e) => e.subject },
      { title: "what happened", cell: (e) => e.reason },
      { title: "cause", cell: (e) => e.cause },
      { title: "by", cell: (e) => e.by },
    ],
    events,
    { empty: "no events yet", data: (e) => ({ seq: e.seq, kind: e.kind, subject: e.subject }) },
  );
}
