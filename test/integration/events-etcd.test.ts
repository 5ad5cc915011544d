/**
 * The event ring across processes, on a real etcd: writers on separate connections (as separate
 * node processes have) race for the head and never lose or reuse a sequence number; the ring stays
 * bounded; an admin API on a third connection streams every event live (Server-Sent Events) and a
 * stream resumed with Last-Event-ID gets exactly what came after.
 */
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { pino } from "pino";
import { AdminServer } from "../../src/api/admin-server.ts";
import { SseParser } from "../../src/cli/sse-parser.ts";
import { EventLog } from "../../src/cluster/event-log.ts";
import { EVENTS_LOG_PREFIX, type EventInput, eventRecordSchema } from "../../src/cluster/event-record.ts";
import { appendEvents, readEvents } from "../../src/cluster/event-ring.ts";
import { ServerRegistry } from "../../src/storage/server-registry.ts";
import { EtcdStore } from "../../src/store/index.ts";
import { type EtcdProcess, etcdSkipReason, startEtcd } from "../support/etcd-process.ts";

const skip = etcdSkipReason();
const log = pino({ level: "silent" });

function input(writer: string, n: number): EventInput {
  return {
    atMs: Date.now(),
    kind: "move",
    cause: "drain",
    subject: `${writer}-${n}`,
    by: writer,
    reason: "test",
  };
}

/** Reads a stream's events until `count` have come (or the time runs out). */
async function readStream(url: string, token: string, count: number, headers: Record<string, string> = {}) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 20_000);
  const response = await fetch(url, {
    headers: { authorization: `Bearer ${token}`, ...headers },
    signal: controller.signal,
  });
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /^text\/event-stream/);
  const parser = new SseParser();
  const ids: number[] = [];
  const decoder = new TextDecoder();
  const done = (async () => {
    try {
      for await (const chunk of response.body ?? []) {
        for (const message of parser.push(decoder.decode(chunk, { stream: true }))) {
          assert.equal(message.event, "message");
          const record = eventRecordSchema.parse(JSON.parse(message.data));
          assert.equal(String(record.seq), message.id);
          ids.push(record.seq);
          if (ids.length >= count) {
            controller.abort();
            return ids;
          }
        }
      }
    } catch (error) {
      if (!controller.signal.aborted) throw error;
    } finally {
      clearTimeout(timer);
    }
    return ids;
  })();
  return { done };
}

describe("the event ring on etcd", { skip, timeout: 120_000 }, () => {
  let etcd: EtcdProcess;
  let dir: string;
  before(async () => {
    etcd = await startEtcd();
    dir = await mkdtemp(join(tmpdir(), "flotilla-events-etcd-"));
  });
  after(async () => {
    await etcd?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const connect = (namespace: string) => EtcdStore.connect({ endpoints: [etcd.endpoint], namespace });

  test("writers in different processes share one ordered ring, streamed live and resumed", async () => {
    const namespace = `/events-${randomUUID()}/`;
    const [apiStore, a, b] = await Promise.all([connect(namespace), connect(namespace), connect(namespace)]);
    const registry = await ServerRegistry.openWithSecret(apiStore, randomBytes(32), log);
    const api = await AdminServer.start({
      store: apiStore,
      registry,
      port: 0,
      tokenFile: join(dir, "admin-token"),
      logger: log,
    });
    try {
      const live = await readStream(`${api.url}/v1/events/stream?since=0`, api.token, 80);
      const logA = new EventLog(a);
      const logB = new EventLog(b);
      for (let i = 0; i < 40; i++) {
        logA.emit(input("a", i), log);
        logB.emit(input("b", i), log);
      }
      await Promise.all([logA.flush(), logB.flush()]);
      assert.equal(logA.written + logB.written, 80);
      const page = await readEvents(apiStore, { since: 0, limit: 1000 });
      assert.deepEqual(
        page.events.map((e) => e.seq),
        Array.from({ length: 80 }, (_, i) => i + 1),
      );
      const fromA = page.events.filter((e) => e.by === "a").map((e) => e.subject);
      assert.deepEqual(
        fromA,
        Array.from({ length: 40 }, (_, i) => `a-${i}`),
        "each writer's events in its order",
      );
      assert.deepEqual(
        await live.done,
        Array.from({ length: 80 }, (_, i) => i + 1),
        "the stream got every event once, in order",
      );

      const resumed = await readStream(`${api.url}/v1/events/stream`, api.token, 10, {
        "last-event-id": "70",
      });
      assert.deepEqual(
        await resumed.done,
        Array.from({ length: 10 }, (_, i) => 71 + i),
      );
      const bad = await fetch(`${api.url}/v1/events?since=abc`, {
        headers: { authorization: `Bearer ${api.token}` },
      });
      assert.equal(bad.status, 400);
      const noToken = await fetch(`${api.url}/v1/events/stream`);
      assert.equal(noToken.status, 401);
    } finally {
      await api.close();
      await registry.close();
      await Promise.all([apiStore.close(), a.close(), b.close()]);
    }
  });

  test("the ring stays bounded on etcd while two connections append", async () => {
    const namespace = `/events-${randomUUID()}/`;
    const [a, b] = await Promise.all([connect(namespace), connect(namespace)]);
    try {
      await Promise.all(
        [a, b].map(async (store, w) => {
          for (let i = 0; i < 15; i++)
            await appendEvents(store, [input(`w${w}`, i), input(`w${w}`, i + 100)], 10);
        }),
      );
      const { kvs } = await a.range(EVENTS_LOG_PREFIX);
      assert.equal(kvs.length, 10);
      const page = await readEvents(b, { limit: 100 });
      assert.deepEqual(
        page.events.map((e) => e.seq),
        Array.from({ length: 10 }, (_, i) => 51 + i),
      );
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});
