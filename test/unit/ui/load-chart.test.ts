/** The load chart: scaled to the highest load, lines broken where a node had none, names escaped. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { CHART_HEIGHT, CHART_WIDTH, chartTop, loadChart, seriesRuns } from "../../../src/ui/load-chart.ts";
import { LOAD_WINDOW_MS, type LoadHistory } from "../../../src/ui/load-history.ts";

const NOW = 10 * LOAD_WINDOW_MS;
const at = (ageMs: number, loads: Record<string, number | null>) => ({
  atMs: NOW - ageMs,
  loads: new Map(Object.entries(loads)),
});

test("the y axis tops at a full core at least, else the highest load up to the next half", () => {
  assert.equal(chartTop([]), 1);
  assert.equal(chartTop([at(0, { n1: 0.3 })]), 1);
  assert.equal(chartTop([at(0, { n1: 1.2, n2: null })]), 1.5);
  assert.equal(chartTop([at(0, { n1: 2 })]), 2);
});

test("a node's line runs from the window's start to now, and breaks where it had no load", () => {
  const history: LoadHistory = [
    at(LOAD_WINDOW_MS, { n1: 0 }),
    at(LOAD_WINDOW_MS / 2, { n1: 1 }),
    at(1000, { n1: null }),
    at(0, { n1: 0.5 }),
  ];
  const runs = seriesRuns(history, "n1", NOW, 1);
  assert.equal(runs.length, 2, "dead at one sample: two runs");
  const points = runs.map((r) => r.split(" ").map((p) => p.split(",").map(Number)));
  const [[first, middle], [last]] = points as [[number[], number[]], [number[]]];
  assert.equal(first?.[1], CHART_HEIGHT - 18, "load 0 at the bottom of the plot");
  assert.equal(middle?.[1], 0, "load 1 (the top) at the top");
  assert.equal(last?.[0], CHART_WIDTH, "now at the right edge");
  assert.ok((first?.[0] ?? 0) < (middle?.[0] ?? 0));
  assert.deepEqual(seriesRuns(history, "n9", NOW, 1), [], "a node never seen has no line");
});

test("the chart has a series and a legend entry per node, node names escaped", () => {
  const svg = loadChart([at(2000, { n1: 0.2, "<n2>": 0.4 }), at(0, { n1: 0.3, "<n2>": 0.5 })], NOW).text;
  assert.match(svg, /^<svg class="load-chart"/);
  assert.match(svg, /data-series="n1"/);
  assert.match(svg, /data-series="&lt;n2&gt;"/);
  assert.doesNotMatch(svg, /<n2>/);
  assert.equal(svg.match(/<polyline /g)?.length, 2);
  assert.match(svg, /class="legend series-0">&lt;n2&gt;</);
});
