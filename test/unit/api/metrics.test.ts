import assert from "node:assert/strict";
import { test } from "node:test";
import { pino } from "pino";
import { Registry } from "prom-client";
import { AdminMetrics } from "../../../src/api/metrics.ts";
import { NfsMetrics, VSERVERS_TRACKED_MAX } from "../../../src/api/nfs-metrics.ts";
import { appendEvents } from "../../../src/cluster/event-ring.ts";
import { encodeRecord, keys, type ServerLoadRecord, serverLoadSchema } from "../../../src/storage/catalog.ts";
import { EmbeddedStore } from "../../../src/store/index.ts";

const log = pino({ level: "silent" });

/** Every sample line is `name{labels} value`, as Prometheus's text format has it. */
function assertExposition(text: string): void {
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("# HELP ") || line.startsWith("# TYPE ")) continue;
    assert.match(
      line,
      /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_]\w*="[^"]*",?)*\})? (-?[0-9.e+-]+|Nan|NaN|[+-]Inf)$/,
      line,
    );
  }
}

function sample(text: string, name: string, labels: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${name}{${labels}} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
}

test("NFS calls: counters by vserver and procedure, bytes by vserver, a cumulative latency histogram", async () => {
  const nfs = new NfsMetrics();
  const registry = new Registry();
  nfs.register(registry);
  const vs1 = nfs.forVserver("vs1");
  vs1.record("WRITE", 0.3, false, 65_600, 120);
  vs1.record("WRITE", 7, false, 65_600, 120);
  vs1.record("LOOKUP", 0.05, true, 60, 100);
  nfs.forVserver("vs2").record("WRITE", 3000, false, 1000, 100);
  assert.equal(nfs.forVserver("vs1"), vs1, "a restarted vserver counts on in the same place");

  const text = await registry.metrics();
  assertExposition(text);
  assert.equal(sample(text, "flotilla_nfs_calls_total", 'vserver="vs1",procedure="WRITE"'), 2);
  assert.equal(sample(text, "flotilla_nfs_calls_total", 'vserver="vs2",procedure="WRITE"'), 1);
  assert.equal(sample(text, "flotilla_nfs_errors_total", 'vserver="vs1",procedure="LOOKUP"'), 1);
  assert.equal(sample(text, "flotilla_nfs_received_bytes_total", 'vserver="vs1"'), 131_260);
  assert.equal(sample(text, "flotilla_nfs_sent_bytes_total", 'vserver="vs1"'), 340);
  const h = "flotilla_nfs_call_duration_seconds";
  assert.equal(sample(text, `${h}_bucket`, 'le="0.0005",procedure="WRITE"'), 1);
  assert.equal(sample(text, `${h}_bucket`, 'le="0.01",procedure="WRITE"'), 2);
  assert.equal(sample(text, `${h}_bucket`, 'le="2.5",procedure="WRITE"'), 2, "3 s is past the last bound");
  assert.equal(sample(text, `${h}_bucket`, 'le="+Inf",procedure="WRITE"'), 3, "summed over vservers");
  assert.equal(sample(text, `${h}_count`, 'procedure="WRITE"'), 3);
  assert.ok(Math.abs((sample(text, `${h}_sum`, 'procedure="WRITE"') ?? 0) - 3.0073) < 1e-9);
  assert.equal(
    text.split("\n").filter((l) => l.startsWith(`${h}_bucket{`) && l.includes('procedure="LOOKUP"')).length,
    15,
    "one line per bound and +Inf",
  );

  // The registry formats the same numbers as JSON too.
  const json = await registry.getMetricsAsJSON();
  assert.ok(json.some((m) => m.name === h && m.values.length > 0));
});

test("the vservers counted are bounded; the one not started longest goes first", () => {
  const nfs = new NfsMetrics();
  const first = nfs.forVserver("v0");
  for (let i = 1; i <= VSERVERS_TRACKED_MAX; i++) nfs.forVserver(`v${i}`);
  assert.notEqual(nfs.forVserver("v0"), first, "v0 was forgotten and starts again from zero");
  assert.equal(nfs.forVserver(`v${VSERVERS_TRACKED_MAX}`), nfs.forVserver(`v${VSERVERS_TRACKED_MAX}`));
});

function load(serverId: string, requestsPerSec: number): ServerLoadRecord {
  return {
    serverId,
    atMs: Date.now(),
    requestsPerSec,
    readBytesPerSec: 1000,
    writeBytesPerSec: 2000,
    latencyP50Ms: 1,
    latencyP99Ms: 20,
    sequentialShare: 0.5,
    readShare: 0.5,
    requestsInFlight: 3,
    cpuBusy: 0.25,
    networkInBytesPerSec: 10,
    networkOutBytesPerSec: 20,
    capacityBytes: 1 << 30,
    usedBytes: 1 << 20,
    hotChunks: [],
  };
}

test("cluster-wide metrics come from the store: storage loads, and events counted by kind and cause", async () => {
  const store = new EmbeddedStore();
  await store.put(keys.load("s1"), encodeRecord(serverLoadSchema, load("s1", 400)));
  await store.put(keys.load("s2"), encodeRecord(serverLoadSchema, load("s2", 100)));
  const event = (kind: "failover" | "move" | "live-move", cause: string) => ({
    atMs: 1,
    kind,
    cause,
    subject: "vs1",
    by: "n1",
    reason: "test",
  });
  await appendEvents(store, [
    event("failover", "node-dead"),
    event("failover", "node-dead"),
    event("move", "drain"),
    event("live-move", "moved"),
    event("live-move", "rolled-back"),
  ]);
  const metrics = new AdminMetrics(store, undefined, log);
  const text = await metrics.text();
  assertExposition(text);
  assert.match(metrics.contentType, /^text\/plain; version=0\.0\.4/);
  assert.equal(sample(text, "flotilla_storage_requests_per_second", 'server="s1"'), 400);
  assert.equal(sample(text, "flotilla_storage_latency_p99_seconds", 'server="s2"'), 0.02);
  assert.equal(sample(text, "flotilla_storage_hot", 'server="s1"'), 1, "1.6x the mean");
  assert.equal(sample(text, "flotilla_storage_hot", 'server="s2"'), 0);
  assert.equal(sample(text, "flotilla_events_total", 'kind="failover",cause="node-dead"'), 2);
  assert.equal(sample(text, "flotilla_failovers_total", 'cause="node-dead"'), 2);
  assert.equal(sample(text, "flotilla_vserver_moves_total", 'cause="drain"'), 1);
  assert.equal(
    sample(text, "flotilla_vserver_moves_total", 'cause="live"'),
    1,
    "a rolled-back live move is no move",
  );
  assert.match(text, /^flotilla_events_last_seq 5$/m);
  assert.match(text, /^flotilla_store_up 1$/m);
  assert.match(text, /^flotilla_process_resident_memory_bytes \d+/m, "Node's process metrics");

  await store.close();
  const after = await metrics.text();
  assert.match(after, /^flotilla_store_up 0$/m, "a store that cannot be read is said, not a failed scrape");
  assert.equal(sample(after, "flotilla_events_total", 'kind="failover",cause="node-dead"'), undefined);
});
