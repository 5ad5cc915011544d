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
