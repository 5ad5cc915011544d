import assert from "node:assert/strict";
import { test } from "node:test";
import { eventMessage } from "../../../src/api/event-stream.ts";
import { formatEvent, formatMissed } from "../../../src/cli/event-format.ts";
import { MESSAGE_CHARS_MAX, SseParser } from "../../../src/cli/sse-parser.ts";
import { toRecord } from "../../../src/cluster/event-record.ts";

const record = toRecord(
  {
    atMs: Date.UTC(2026, 11, 7, 13, 9, 1, 123),
    kind: "failover",
    cause: "node-dead",
    subject: "vs1",
    by: "n2",
    reason: "node n1 lost its lease; it goes to n2",
  },
  42,
);

test("an event is one line: time, kind, subject, reason, then cause, who and its number", () => {
  assert.equal(
    formatEvent(record),
    "2026-12-07 13:09:01.123  failover   vs1           node n1 lost its lease; it goes to n2  [node-dead, by n2, #42]",
  );
  assert.equal(formatMissed(3, 3), "(1 event #3-#3 left the ring before they could be read)");
  assert.match(formatMissed(3, 9), /^\(7 events #3-#9/);
});

test("the stream's messages parse back, whatever the chunk boundaries", () => {
  const text = `retry: 2000\n\n: keep-alive\n\n${eventMessage(record)}event: missed\ndata: {"from":1,"to":2}\n\n`;
  for (const size of [1, 3, 7, 64, text.length]) {
    const parser = new SseParser();
    const messages = [];
    for (let i = 0; i < text.length; i += size) messages.push(...parser.push(text.slice(i, i + size)));
    assert.deepEqual(
      messages.map((m) => [m.id, m.event]),
      [
        ["42", "message"],
        ["42", "missed"],
      ],
      `chunks of ${size}`,
    );
    assert.deepEqual(JSON.parse(messages[0]!.data), record);
  }
  const crlf = new SseParser().push("id: 7\r\ndata: a\r\ndata: b\r\n\r\n");
  assert.deepEqual(crlf, [{ id: "7", event: "message", data: "a\nb" }]);
});

test("a message without an end is bounded", () => {
  const parser = new SseParser();
  assert.throws(() => parser.push(`data: ${"x".repeat(MESSAGE_CHARS_MAX)}`), /over/);
});
