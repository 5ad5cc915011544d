/**
 * `flotilla vserver move VS --to NODE [--live] [--force]` as an operator runs it, through the admin
 * API of the node serving the vserver: its exit status, its output, and (for a live move) the
 * migration record it printed with --json.
 */
import { z } from "zod";
import { run } from "../integration/tools.ts";
import { MAIN } from "./flotilla-process.ts";
import type { ProcessCluster } from "./process-cluster.ts";

const liveMoveJsonSchema = z.object({
  state: z.string(),
  rounds: z.number().int().nonnegative().default(0),
  pagesSent: z.number().int().nonnegative().default(0),
  bytesSent: z.number().int().nonnegative().default(0),
  suspendedMs: z.number().nonnegative().default(0),
});
export type LiveMoveJson = z.infer<typeof liveMoveJsonSchema>;

export interface VserverMoveResult {
  readonly status: number | null;
  /** stdout and stderr together, for assertion messages. */
  readonly out: string;
  /** With `json`: the live move's record as the API returned it. */
  readonly live?: LiveMoveJson;
}

export async function vserverMove(
  cluster: ProcessCluster,
  vserverId: string,
  to: string,
  options: { readonly live: boolean; readonly force?: boolean; readonly json?: boolean },
): Promise<VserverMoveResult> {
  const admin = cluster.adminOf(await cluster.servedBy(vserverId));
  const result = await run(
    process.execPath,
    [
      MAIN,
      "vserver",
      "move",
      vserverId,
      "--to",
      to,
      ...(options.live ? ["--live"] : []),
      ...(options.force === true ? ["--force"] : []),
      ...(options.json === true ? ["--json"] : []),
      "--api",
      admin.url,
      "--token-file",
      admin.tokenFile,
    ],
    { timeoutMs: 120_000 },
  );
  const out = `${result.stdout}${result.stderr}`;
  if (options.json !== true || !options.live || result.status !== 0) return { status: result.status, out };
  return { status: result.status, out, live: liveMoveJsonSchema.parse(JSON.parse(result.stdout)) };
}
