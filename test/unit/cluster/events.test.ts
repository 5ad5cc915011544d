import assert from "node:assert/strict";
import { test } from "node:test";
import { pino } from "pino";
import { EventLog, eventLogOf, recordEvents } from "../../../src/cluster/event-log.ts";
import {
  advanceHead,
  EMPTY_HEAD,
  EVENT_COUNTS_MAX,
  EVENT_REASON_CHARS_MAX,
  EVENTS_LOG_PREFIX,
  type EventInput,
  eventKey,
  evictedSeqs,
  toRecord,
} from "../../../src/cluster/event-record.ts";
import { appendEvents, readEvents, readHead } from "../../../src/cluster/event-ring.ts";
import { releaseHolder, takeHolder } from "../../../src/cluster/handover.ts";
import { nodeEvent, planEvents } from "../../../src/cluster/master-events.ts";
import type { ClusterNode, ClusterState, PlanAction, Vserver } from "../../../src/cluster/model.ts";
import { EmbeddedStore } from "../../../src/store/index.ts";

const log = pino({ level: "silent" });

function input(n: number, kind: EventInput["kind"] = "move", cause = "drain"): EventInput {
  return { atMs: 1_000 + n, kind, cause, subject: `vs${n}`, reason: `event ${n}`, by: "n1" };
}

test("the ring evicts exactly what falls out of it", () => {
  assert.deepEqual(evictedSeqs(1, 3, 5), []);
  assert.deepEqual(evictedSeqs(5, 3, 5), [1, 2]);
  assert.deepEqual(evictedSeqs(100, 2, 5), [95, 96]);
  assert.ok(eventKey(9) < eventKey(10), "keys sort in sequence order");
  assert.ok(eventKey(999_999) < eventKey(1_000_000));
});

test("a record is bounded: long text clipped, a bad cause counted as other, details capped", () => {
  const details: Record<string, string> = {};
  for (let i = 0; i < 40; i++) details[`k${i}`] = "x".repeat(500);
  const record = toRecord(
    { ...input(1), reason: "r".repeat(10_000), cause: "Not A Slug", subject: "s".repeat(900), details },
    7,
  );
  assert.equal(record.seq, 7);
  assert.equal(record.reason.length, EVENT_REASON_CHARS_MAX);
  assert.ok(record.reason.endsWith("…"));
  assert.equal(record.cause, "other");
  assert.equal(record.subject.length, 128);
  assert.equal(Object.keys(record.details).length, 16);
  assert.ok(Object.values(record.details).every((v) => typeof v === "string" && v.length <= 128));
  assert.ok(JSON.stringify(record).length < 4096, "a record stays within a few KiB");
});

test("the head counts every event by kind/cause, with a bound on distinct causes", () => {
  const records = [toRecord(input(1, "failover", "node-dead"), 1), toRecord(input(2, "move", "drain"), 2)];
  const head = advanceHead(EMPTY_HEAD, records);
  assert.deepEqual(head, { next: 3, counts: { "failover/node-dead": 1, "move/drain": 1 } });
  let many = EMPTY_HEAD;
  for (let i = 0; i < EVENT_COUNTS_MAX + 10; i++)
    many = advanceHead(many, [toRecord(input(i, "balance", `c${i}`), many.next)]);
  assert.equal(Object.keys(many.counts).length, EVENT_COUNTS_MAX + 1);
  assert.equal(many.counts["balance/other"], 10);
});

test("appends keep a bounded ring in the store, in order, with the head's counts", async () => {
  await using store = new EmbeddedStore();
  for (let batch = 0; batch < 4; batch++)
    await appendEvents(store, [input(batch * 3 + 1), input(batch * 3 + 2), input(batch * 3 + 3)], 5);
  const { kvs } = await store.range(EVENTS_LOG_PREFIX);
  assert.equal(kvs.length, 5, "the ring holds its bound, no more");
  const page = await readEvents(store, { limit: 100 });
  assert.deepEqual(
    page.events.map((e) => e.seq),
    [8, 9, 10, 11, 12],
  );
  assert.deepEqual(
    page.events.map((e) => e.subject),
    ["vs8", "vs9", "vs10", "vs11", "vs12"],
  );
  assert.equal(page.lastSeq, 12);
  assert.equal(page.oldestSeq, 8);
  const { head } = await readHead(store);
  assert.equal(head.counts["move/drain"], 12, "counts do not go back when the ring trims");
});

test("writers racing for the head never lose or reuse a sequence number", async () => {
  await using store = new EmbeddedStore();
  await Promise.all(
    Array.from({ length: 8 }, (_, writer) =>
      (async () => {
        for (let i = 0; i < 10; i++) await appendEvents(store, [input(writer * 100 + i)]);
      })(),
    ),
  );
  const page = await readEvents(store, { limit: 1000 });
  assert.deepEqual(
    page.events.map((e) => e.seq),
    Array.from({ length: 80 }, (_, i) => i + 1),
  );
  assert.equal(new Set(page.events.map((e) => e.subject)).size, 80, "every event landed once");
});

test("reading since a sequence number pages forward; without one, the newest; bad records skipped", async () => {
  await using store = new EmbeddedStore();
  await appendEvents(
    store,
    Array.from({ length: 10 }, (_, i) => input(i + 1)),
  );
  await store.put(eventKey(5), new TextEncoder().encode('{"seq":5,"kind":"nonsense"}'));
  const newest = await readEvents(store, { limit: 3 });
  assert.deepEqual(
    newest.events.map((e) => e.seq),
    [8, 9, 10],
  );
  assert.equal(newest.malformed, 1);
  const after = await readEvents(store, { since: 3, limit: 4 });
  assert.deepEqual(
    after.events.map((e) => e.seq),
    [4, 6, 7, 8],
  );
  assert.deepEqual((await readEvents(store, { since: 10, limit: 4 })).events, []);
});

test("the event log writes in the background, batched and in order; a closed store drops, never throws", async () => {
  const store = new EmbeddedStore();
  const events = new EventLog(store);
  for (let i = 1; i <= 100; i++) events.emit(input(i), log);
  await events.flush();
  assert.equal(events.written, 100);
  const page = await readEvents(store, { limit: 1000 });
  assert.deepEqual(
    page.events.map((e) => e.subject),
    Array.from({ length: 100 }, (_, i) => `vs${i + 1}`),
  );
  await store.close();
  events.emit(input(101), log);
  await events.flush();
  assert.equal(events.dropped, 1);
});

test("recordEvents shares one log per store", async () => {
  await using store = new EmbeddedStore();
  recordEvents(store, [input(1), input(2)], log);
  assert.equal(eventLogOf(store), eventLogOf(store));
  await eventLogOf(store).flush();
  assert.equal((await readEvents(store, { limit: 10 })).events.length, 2);
});

function node(id: string, reaches: string[] = []): ClusterNode {
  return {
    id,
    roles: ["filer"],
    alive: true,
    sinceMs: 0,
    hasDied: false,
    operatorState: "enabled",
    vserversMax: 8,
    load: { loadPerCore: 0, memoryFreeBytes: 0 },
    reaches,
  };
}

function vserver(id: string, nodeId: string | null, extra: Partial<Vserver> = {}): Vserver {
  return {
    id,
    name: id,
    priority: 0,
    pinned: false,
    vips: ["127.0.9.1", "127.0.9.2"],
    volumes: [`${id}-data`],
    placement: { node: nodeId, generation: 3, sinceMs: 0 },
    blocked: null,
    ...extra,
  };
}

test("the master's plan becomes events with reasons, only for what was written", () => {
  const state: ClusterState = {
    nodes: [node("n1"), node("n2", ["subnet:10.0.1.0/24"]), node("n3", ["subnet:10.0.1.0/24"])],
    vservers: [
      vserver("a", "n1"),
      vserver("b", "n2"),
      vserver("c", "n1", { requires: ["subnet:10.0.1.0/24"] }),
      vserver("d", null, { placement: { node: null, generation: 0, sinceMs: 0 } }),
      vserver("e", "n1", { pinned: true }),
      vserver("f", "n1"),
      vserver("lost", "n1"),
    ],
  };
  const actions: PlanAction[] = [
    { kind: "placement", vserverId: "a", from: "n1", to: "n2", generation: 4, cause: "failover" },
    { kind: "placement", vserverId: "b", from: "n2", to: "n3", generation: 4, cause: "drain" },
    { kind: "placement", vserverId: "c", from: "n1", to: "n3", generation: 4, cause: "unreachable" },
    { kind: "placement", vserverId: "d", from: null, to: "n2", generation: 1, cause: "place" },
    { kind: "blocked", vserverId: "e", blocked: { code: "pinned-node-dead", node: "n1" } },
    { kind: "placement", vserverId: "f", from: "n1", to: null, generation: 4, cause: "failover" },
    { kind: "placement", vserverId: "lost", from: "n1", to: "n3", generation: 4, cause: "failover" },
  ];
  const written = new Set(["a", "b", "c", "d", "e", "f"]);
  const events = planEvents(state, actions, written, "n2", 5_000);
  assert.deepEqual(
    events.map((e) => [e.kind, e.cause, e.subject]),
    [
      ["failover", "node-dead", "a"],
      ["move", "drain", "b"],
      ["move", "unreachable", "c"],
      ["place", "new", "d"],
      ["blocked", "pinned-node-dead", "e"],
      ["failover", "node-dead", "f"],
    ],
    "a placement that lost its compare-and-swap is no event",
  );
  assert.match(events[0]!.reason, /node n1 lost its lease; it goes to n2/);
  assert.match(events[2]!.reason, /no longer reaches subnet:10\.0\.1\.0\/24/);
  assert.match(events[4]!.reason, /pinned, and its node n1 is dead/);
  assert.match(events[5]!.reason, /no node can take it/);
  assert.deepEqual(events[0]!.details, { from: "n1", to: "n2", generation: 4 });
  assert.ok(events.every((e) => e.by === "n2" && e.atMs === 5_000));

  const already: ClusterState = {
    nodes: state.nodes,
    vservers: [vserver("e", "n1", { blocked: { code: "cooldown", untilMs: 1 } })],
  };
  const later: PlanAction[] = [
    { kind: "blocked", vserverId: "e", blocked: { code: "cooldown", untilMs: 2 } },
  ];
  assert.deepEqual(planEvents(already, later, new Set(["e"]), "n2", 1), [], "same reason, no news");
  assert.equal(nodeEvent("n1", false, "n2", 1).cause, "lease-lost");
});

test("a forced takeover is recorded as a fence event by the node that fenced", async () => {
  await using store = new EmbeddedStore();
  const take = async (nodeId: string, waitMs: number) =>
    takeHolder({
      store,
      nodeId,
      vserverId: "vs",
      generation: 1,
      leaseId: (await store.grantLease(60_000)).id,
      waitMs,
      log,
      nextChange: (ms) => new Promise((resolve) => setTimeout(resolve, Math.min(ms, 10))),
      stillWanted: () => true,
    });
  const first = await take("n1", 1_000);
  assert.ok(first !== undefined);
  const second = await take("n2", 50);
  assert.ok(second?.forced);
  await eventLogOf(store).flush();
  const [fence] = (await readEvents(store, { limit: 10 })).events;
  assert.equal(fence?.kind, "fence");
  assert.equal(fence?.cause, "forced-takeover");
  assert.equal(fence?.by, "n2");
  assert.match(fence?.reason ?? "", /node n1 did not hand over within 50 ms/);
  await releaseHolder(store, second);
});
