/** The load history: bounded in time and count, only forward in time. */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  addLoadSample,
  LOAD_SAMPLES_MAX,
  LOAD_WINDOW_MS,
  type LoadHistory,
  nodesOf,
} from "../../../src/ui/load-history.ts";

const sample = (atMs: number, loads: Record<string, number | null> = { n1: 0.5 }) => ({
  atMs,
  loads: new Map(Object.entries(loads)),
});

test("samples older than the window are dropped", () => {
  let history: LoadHistory = [];
  for (const at of [0, 1000, LOAD_WINDOW_MS, LOAD_WINDOW_MS + 1000])
    history = addLoadSample(history, sample(at));
  assert.deepEqual(
    history.map((s) => s.atMs),
    [1000, LOAD_WINDOW_MS, LOAD_WINDOW_MS + 1000],
  );
});

test("at most LOAD_SAMPLES_MAX are kept, the newest", () => {
  let history: LoadHistory = [];
  for (let i = 1; i <= LOAD_SAMPLES_MAX + 10; i++) history = addLoadSample(history, sample(i));
  assert.equal(history.length, LOAD_SAMPLES_MAX);
  assert.equal(history.at(-1)?.atMs, LOAD_SAMPLES_MAX + 10);
  assert.equal(history[0]?.atMs, 11);
});

test("a sample not newer than the newest (a slow answer overtaken) is left out", () => {
  const history = addLoadSample(addLoadSample([], sample(2000)), sample(3000));
  assert.equal(addLoadSample(history, sample(2500)), history);
  assert.equal(addLoadSample(history, sample(3000)), history);
});

test("the nodes of a history, sorted, including those gone since", () => {
  const history = addLoadSample(addLoadSample([], sample(1, { n2: 1, n1: null })), sample(2, { n3: 0 }));
  assert.deepEqual(nodesOf(history), ["n1", "n2", "n3"]);
});
