import assert from "node:assert/strict";
import { test } from "node:test";
import {
  CopyRestarts,
  RESTART_PAUSE_MS_MAX,
  type RestartDecision,
  UNREACHABLE_RESTARTS_MAX,
} from "../../../src/storage/copy-restarts.ts";

function pause(decision: RestartDecision): number {
  assert.ok(decision.restart, `expected a restart, got: ${decision.restart ? "" : decision.why}`);
  return decision.pauseMs;
}

test("copy restarts: content restarts are counted, with pauses doubling from 50 ms", () => {
  const restarts = new CopyRestarts(5, 10_000);
  assert.deepEqual(
    [1, 2, 3, 4].map(() => pause(restarts.next("content", true, 0))),
    [50, 100, 200, 400],
  );
  const last = restarts.next("content", true, 0);
  assert.equal(last.restart, false);
  assert.match(last.restart ? "" : last.why, /restarted 5 times/);
});

test("copy restarts: an unreachable server is waited for by time, not count, with pauses up to 1 s", () => {
  const restarts = new CopyRestarts(5, 10_000);
  let nowMs = 0;
  const pauses: number[] = [];
  for (;;) {
    const decision = restarts.next("unreachable", false, nowMs);
    if (!decision.restart) {
      assert.match(decision.why, /unreachable for 10\d\d\d ms/);
      break;
    }
    pauses.push(decision.pauseMs);
    nowMs += decision.pauseMs + 5;
  }
  assert.deepEqual(pauses.slice(0, 6), [50, 100, 200, 400, 800, 1000]);
  assert.ok(pauses.length > 5, `${pauses.length} restarts: more than the content count`);
  assert.ok(Math.max(...pauses) <= RESTART_PAUSE_MS_MAX);
  assert.ok(nowMs >= 10_000, "the budget was waited out");
});

test("copy restarts: reaching the target again starts a new unreachable run, and content restarts keep their own count", () => {
  const restarts = new CopyRestarts(5, 1000);
  pause(restarts.next("unreachable", false, 0));
  pause(restarts.next("unreachable", false, 900));
  // The server came back (the fill began), then went away again much later.
  assert.equal(pause(restarts.next("unreachable", true, 60_000)), 50);
  pause(restarts.next("unreachable", false, 60_500));
  assert.equal(restarts.next("unreachable", false, 61_100).restart, false);
  assert.equal(pause(new CopyRestarts(5, 1000).next("content", true, 0)), 50);
});

test("copy restarts: a server that keeps flapping is given up after a bounded number of restarts", () => {
  const restarts = new CopyRestarts(5, 10_000);
  let decision: RestartDecision = { restart: true, pauseMs: 0 };
  let count = 0;
  while (decision.restart) {
    decision = restarts.next("unreachable", true, count * 10_000);
    count++;
  }
  assert.equal(count, UNREACHABLE_RESTARTS_MAX + 1);
});
