/** What the cluster benchmarks share: their numeric arguments and the percentiles they print. */

/** A --flag's positive whole number, or the fallback when it is absent; a clear error otherwise. */
export function parsePositive(text: string | undefined, fallback: number, what: string): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0)
    throw new Error(`--${what} must be a positive whole number, not ${text}`);
  return value;
}

/** The nearest-rank percentile of ascending values (p from 0 to 1); NaN for none. */
export function percentile(sorted: readonly number[], p: number): number {
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[index] ?? Number.NaN;
}
