/**
 * The live load chart: one line per node of its load per core over the last minutes, as inline
 * SVG (no canvas, no library: it is markup the page sets like any other, and a test can read it).
 * A node without a load at some time (dead) breaks its line there. Pure.
 */
import { html, type SafeHtml } from "./html.ts";
import { LOAD_WINDOW_MS, type LoadHistory, nodesOf } from "./load-history.ts";

export const CHART_WIDTH = 600;
export const CHART_HEIGHT = 160;
const MARGIN_LEFT = 36;
const MARGIN_BOTTOM = 18;
/** Distinct series colours in the style sheet (.series-0 ...); more nodes reuse them. */
export const SERIES_COLOURS = 8;

/** The top of the y axis: at least 1 (a full core), else the highest load rounded up to a half. */
export function chartTop(history: LoadHistory): number {
  let highest = 0;
  for (const s of history)
    for (const load of s.loads.values()) if (load !== null) highest = Math.max(highest, load);
  return Math.max(1, Math.ceil(highest * 2) / 2);
}

/** The polyline point lists of one node: a run of samples with a load each, split where it has none. */
export function seriesRuns(history: LoadHistory, nodeId: string, nowMs: number, top: number): string[] {
  const plotWidth = CHART_WIDTH - MARGIN_LEFT;
  const plotHeight = CHART_HEIGHT - MARGIN_BOTTOM;
  const runs: string[][] = [];
  let current: string[] | undefined;
  for (const s of history) {
    const load = s.loads.get(nodeId) ?? null;
    if (load === null) {
      current = undefined;
      continue;
    }
    const age = Math.min(LOAD_WINDOW_MS, Math.max(0, nowMs - s.atMs));
    const x = MARGIN_LEFT + plotWidth * (1 - age / LOAD_WINDOW_MS);
    const y = plotHeight * (1 - Math.min(load, top) / top);
    if (current === undefined) {
      current = [];
      runs.push(current);
    }
    current.push(`${x.toFixed(1)},${y.toFixed(1)}`);
  }
  return runs.map((points) => points.join(" "));
}

export function loadChart(history: LoadHistory, nowMs: number): SafeHtml {
  const top = chartTop(history);
  const plotHeight = CHART_HEIGHT - MARGIN_BOTTOM;
  const nodes = nodesOf(history);
  const series = nodes.map((id, index) => {
    const colour = `series-${index % SERIES_COLOURS}`;
    const runs = seriesRuns(history, id, nowMs, top);
    return html`<g class="${colour}" data-series="${id}">${runs.map(
      (points) => html`<polyline points="${points}"></polyline>`,
    )}</g>`;
  });
  const legend = nodes.map(
    (id, index) => html`<span class="legend series-${index % SERIES_COLOURS}">${id}</span>`,
  );
  const minutes = LOAD_WINDOW_MS / 60_000;
  return html`<svg class="load-chart" viewBox="0 0 ${CHART_WIDTH} ${CHART_HEIGHT}" role="img" aria-label="load per core of each node over the last ${minutes} minutes">
<line class="axis" x1="${MARGIN_LEFT}" y1="0" x2="${MARGIN_LEFT}" y2="${plotHeight}"></line>
<line class="axis" x1="${MARGIN_LEFT}" y1="${plotHeight}" x2="${CHART_WIDTH}" y2="${plotHeight}"></line>
<text x="${MARGIN_LEFT - 4}" y="10" text-anchor="end">${top.toFixed(1)}</text>
<text x="${MARGIN_LEFT - 4}" y="${plotHeight}" text-anchor="end">0</text>
<text x="${MARGIN_LEFT}" y="${CHART_HEIGHT - 4}">-${minutes} min</text>
<text x="${CHART_WIDTH}" y="${CHART_HEIGHT - 4}" text-anchor="end">now</text>
${series}</svg><div class="legend-row">${legend}</div>`;
}
