/** The event list: newest first, each once, bounded, reasons escaped. */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { EventRecord } from "../../../src/cluster/event-record.ts";
import { EVENTS_SHOWN, eventsTable, mergeEvents } from "../../../src/ui/event-list.ts";

const event = (seq: number, reason = `event ${seq}`): EventRecord => ({
  seq,
  atMs: 1000 * seq,
  kind: "failover",
  cause: "node-dead",
  subject: "vs1",
  reason,
  by: "n2",
  details: {},
});

test("merged newest first, a repeated one (a reconnect) once", () => {
  const first = mergeEvents([], [event(1), event(2)]);
  const merged = mergeEvents(first, [event(2), event(3)]);
  assert.deepEqual(
    merged.map((e) => e.seq),
    [3, 2, 1],
  );
});

test("at most EVENTS_SHOWN, the newest", () => {
  const many = Array.from({ length: EVENTS_SHOWN + 5 }, (_, i) => event(i + 1));
  const merged = mergeEvents([], many);
  assert.equal(merged.length, EVENTS_SHOWN);
  assert.equal(merged[0]?.seq, EVENTS_SHOWN + 5);
  assert.equal(merged.at(-1)?.seq, 6);
});

test("a row per event with its reason escaped", () => {
  const text = eventsTable([event(4, `node n1 lost its lease; "<b>"`)]).text;
  assert.match(text, /data-seq="4" data-kind="failover" data-subject="vs1"><td>4<\/td>/);
  assert.match(text, /node n1 lost its lease; &quot;&lt;b&gt;&quot;/);
  assert.match(eventsTable([]).text, /no events yet/);
});
