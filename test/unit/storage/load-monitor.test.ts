/**
 * The load monitor: decayed rates that settle on a steady load, percentiles from its histogram, the
 * sequential share and read mix, and a bounded set of hot chunks with the hottest reported first.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { HOT_CHUNKS_REPORTED, LoadMonitor } from "../../../src/storage/load-monitor.ts";
import { ManualClock } from "../../../src/util/clock.ts";

const chunk = (chunkIndex: number) => ({ volumeId: "v", chunkIndex });

test("load monitor: a steady 100 requests/s reads as about 100/s, and fades once it stops", () => {
  const clock = new ManualClock();
  const monitor = new LoadMonitor({ clock, halfLifeMs: 2000 });
  for (let i = 0; i < 2000; i++) {
    clock.advance(10);
    monitor.record(i % 4 === 0 ? "read" : "write", chunk(0), i * 2, 2, 8192, 1);
  }
  const busy = monitor.report();
  assert.ok(Math.abs(busy.requestsPerSec - 100) < 3, `${busy.requestsPerSec}`);
  assert.ok(Math.abs(busy.readBytesPerSec + busy.writeBytesPerSec - 819_200) < 25_000);
  assert.ok(Math.abs(busy.readShare - 0.25) < 0.02, `${busy.readShare}`);
  assert.ok(busy.sequentialShare > 0.99, "each request starts where the last one ended");
  clock.advance(20_000);
  assert.ok(monitor.report().requestsPerSec < 0.2, "ten half-lives later");
});

test("load monitor: p50 and p99 come from the histogram within a bucket's width", () => {
  const clock = new ManualClock();
  const monitor = new LoadMonitor({ clock });
  for (let i = 0; i < 1000; i++)
    monitor.record("read", chunk(i % 7), Math.floor(Math.random() * 1000), 1, 4096, i < 980 ? 1 : 50);
  const report = monitor.report();
  assert.ok(report.latencyP50Ms >= 1 && report.latencyP50Ms < 1.25, `${report.latencyP50Ms}`);
  assert.ok(report.latencyP99Ms >= 50 && report.latencyP99Ms < 62.5, `${report.latencyP99Ms}`);
  assert.ok(report.sequentialShare < 0.1, "random offsets");
});

test("load monitor: the hot chunks are the busiest, at most the reported count, with a bounded set tracked", () => {
  const clock = new ManualClock();
  const monitor = new LoadMonitor({ clock, chunksTracked: 20 });
  for (let round = 0; round < 50; round++)
    for (let c = 0; c < 200; c++) {
      clock.advance(1);
      // Chunks 0..4 are ten times as busy as the rest.
      for (let k = 0; k < (c < 5 ? 10 : 1); k++) monitor.record("write", chunk(c), 0, 1, 4096, 1);
    }
  const { hotChunks } = monitor.report();
  assert.ok(hotChunks.length <= HOT_CHUNKS_REPORTED);
  assert.deepEqual(
    hotChunks
      .slice(0, 5)
      .map((h) => h.chunkIndex)
      .sort((a, b) => a - b),
    [0, 1, 2, 3, 4],
  );
  for (let i = 1; i < hotChunks.length; i++)
    assert.ok(hotChunks[i - 1]!.requestsPerSec >= hotChunks[i]!.requestsPerSec);
});
