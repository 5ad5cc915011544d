/** Where a verb prints: injected so a verb can be driven without a terminal. */
export interface Output {
  /** A line of the verb's report, to stdout. */
  line(text: string): void;
  /** A line about a failure, to stderr. */
  error(text: string): void;
}

export const processOutput: Output = {
  line(text) {
    process.stdout.write(`${text}\n`);
  },
  error(text) {
    process.stderr.write(`${text}\n`);
  },
};

/** Columns padded to their widest cell, two spaces apart. */
export function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)];
}
