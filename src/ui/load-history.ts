/**
 * Each node's load per core over the last minutes, as the dashboard polls it: a bounded list of
 * samples, oldest first. Pure: a new history from the old one and a sample, so the chart and the
 * tests read the same thing.
 */

export const LOAD_WINDOW_MS = 5 * 60_000;
/** A poll every ~2 s over the window, with room for refreshes on events in between. */
export const LOAD_SAMPLES_MAX = 600;

export interface LoadSample {
  readonly atMs: number;
  /** Load per core of each node at that time; null: the node was dead or did not say. */
  readonly loads: ReadonlyMap<string, number | null>;
}

export type LoadHistory = readonly LoadSample[];

/**
 * The history with `sample` added, samples older than the window dropped and at most
 * LOAD_SAMPLES_MAX kept. A sample older than the newest (a slow answer overtaken) is left out:
 * the chart's lines only go forward in time.
 */
export function addLoadSample(history: LoadHistory, sample: LoadSample): LoadHistory {
  const newest = history.at(-1);
  if (newest !== undefined && sample.atMs <= newest.atMs) return history;
  const from = sample.atMs - LOAD_WINDOW_MS;
  const kept = history.filter((s) => s.atMs >= from);
  kept.push(sample);
  return kept.slice(-LOAD_SAMPLES_MAX);
}

/** Every node named in the history, sorted, so each keeps its colour while others come and go. */
export function nodesOf(history: LoadHistory): string[] {
  const ids = new Set<string>();
  for (const s of history) for (const id of s.loads.keys()) ids.add(id);
  return [...ids].sort();
}
