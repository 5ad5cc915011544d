/**
 * Whether a lab test can run here: root for the namespaces, and the host tools it names. Outside CI a
 * missing prerequisite skips the tests with a line saying why; in CI (root, every package installed
 * by .ci/run) nothing is skipped, so a missing prerequisite fails the run instead of hiding it.
 */
import { labPrerequisiteProblem } from "../../src/net/lab.ts";
import { onPath } from "../integration/tools.ts";

export function labSkipReason(
  what: string,
  tools: readonly string[],
  more: () => string | undefined = () => undefined,
): string | undefined {
  const missing = tools.filter((tool) => !onPath(tool));
  const problem =
    labPrerequisiteProblem() ??
    (missing.length > 0 ? `not on PATH: ${missing.join(", ")}` : undefined) ??
    more();
  if (problem === undefined || process.env.CI) return undefined;
  process.stderr.write(`skipping ${what}: ${problem}\n`);
  return problem;
}
