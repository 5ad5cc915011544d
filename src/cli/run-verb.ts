import type { Output } from "./output.ts";

/** A failure the verb has already put in words for the operator; its message is printed as is. */
export class CliFailure extends Error {
  override name = "CliFailure";
}

/**
 * Runs a verb and sets the exit code: the verb's own result, or `failureExitCode` when it throws.
 * A failure prints one line, `<verb>: <reason>`, and never a stack trace: the operator needs the
 * reason, and the reasons we expect (missing file, not a volume, I/O error) carry it in their message.
 */
export async function runVerb(
  verb: string,
  failureExitCode: number,
  output: Output,
  body: () => Promise<number>,
): Promise<void> {
  try {
    process.exitCode = await body();
  } catch (error) {
    output.error(`${verb}: ${describeError(error)}`);
    process.exitCode = failureExitCode;
  }
}

/** The reason a failure gives, on one line. */
export function describeError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const oneLine = message.replace(/\s*\n\s*/g, "; ").trim();
  if (oneLine !== "") return oneLine;
  return error instanceof Error ? error.name : "unknown error";
}

/** Resolves with the first SIGINT or SIGTERM: a serving verb's cue to stop cleanly. */
export function untilStopSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    process.once("SIGINT", () => resolve("SIGINT"));
    process.once("SIGTERM", () => resolve("SIGTERM"));
  });
}
