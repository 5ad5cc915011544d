/** Refreshes asked for while one runs: one more after it, never two at once. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { coalesce } from "../../../src/ui/coalesce.ts";

test("calls during a run make exactly one more run after it; none overlap", async () => {
  let running = 0;
  let runs = 0;
  const gates: (() => void)[] = [];
  const trigger = coalesce(async () => {
    running++;
    assert.equal(running, 1, "never two at once");
    runs++;
    await new Promise<void>((resolve) => gates.push(resolve));
    running--;
  });
  const first = trigger();
  void trigger();
  void trigger();
  assert.equal(runs, 1);
  gates.shift()?.();
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(runs, 2, "the calls during the first run made one more");
  gates.shift()?.();
  await first;
  assert.equal(runs, 2);
  const later = trigger();
  assert.equal(runs, 3, "after the end, a call runs again");
  gates.shift()?.();
  await later;
});

test("a failed run does not stop later ones", async () => {
  let calls = 0;
  const trigger = coalesce(async () => {
    calls++;
    throw new Error("boom");
  });
  await assert.rejects(trigger(), /boom/);
  await assert.rejects(trigger(), /boom/);
  assert.equal(calls, 2);
});
