/**
 * One failover as a client sees it: the C failover writer (libnfs, async, auto-reconnect) writes
 * FILE_SYNC blocks to a vserver; its node is killed with SIGKILL mid-stream; the vserver comes up on
 * another node; the writer runs on, then every block it saw acknowledged is read back. Used by the
 * end-to-end test and by bench/failover.
 */
import { spawn } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { z } from "zod";
import { run } from "../integration/tools.ts";
import type { ProcessCluster } from "./process-cluster.ts";

const writeSummarySchema = z.object({
  acked: z.number().int().nonnegative(),
  errors: z.number().int().nonnegative(),
  stall_ms_max: z.number().nonnegative(),
  stall_end_ms: z.number().nonnegative(),
  gaps: z.array(z.tuple([z.number(), z.number()])),
});
const verifySummarySchema = z.object({
  verified: z.number().int(),
  bad_total: z.number().int(),
  bad: z.array(z.number()),
});

export interface WriterRoundOptions {
  readonly writer: string;
  readonly vserverId: string;
  readonly url: string;
  readonly file: string;
  readonly seconds: number;
  /** When the disruption starts, after the writer. */
  readonly killAfterMs: number;
  readonly blockBytes: number;
  /** The network namespace the client runs in (a network lab's client); default: this host's. */
  readonly namespace?: string;
}
export type FailoverRoundOptions = WriterRoundOptions;

export interface FailoverRound {
  readonly killed: string;
  readonly takenOverBy: string;
  /** The longest gap between two replies the client saw: the failover's cost to it. */
  readonly stallMs: number;
  readonly acked: number;
  readonly errors: number;
  readonly verified: number;
  readonly badBlocks: readonly number[];
  readonly writerOutput: string;
}

function lastJsonLine(text: string): unknown {
  const line = text
    .trim()
    .split("\n")
    .reverse()
    .find((l) => l.startsWith("{"));
  if (line === undefined) throw new Error(`no summary line in:\n${text.slice(-2000)}`);
  return JSON.parse(line);
}

export async function failoverRound(
  cluster: ProcessCluster,
  options: FailoverRoundOptions,
): Promise<FailoverRound> {
  return writerRound(cluster, options, async (killed) => {
    await cluster.killNode(killed);
    const takenOverBy = await cluster.servedBy(options.vserverId, killed);
    return { takenOverBy, after: () => cluster.startNode(killed).then(() => undefined) };
  });
}

/**
 * The failover writer runs against the vserver while `disrupt` (given the node serving it) moves it
 * somehow and says where it went; then every acknowledged block is read back.
 */
export async function writerRound(
  cluster: Pick<ProcessCluster, "servedBy">,
  options: WriterRoundOptions,
  disrupt: (servedBy: string) => Promise<{ takenOverBy: string; after?: () => Promise<void> }>,
): Promise<FailoverRound> {
  const killed = await cluster.servedBy(options.vserverId);
  const inNamespace = (argv: string[]): [string, string[]] =>
    options.namespace === undefined
      ? [options.writer, argv]
      : ["ip", ["netns", "exec", options.namespace, options.writer, ...argv]];
  const [program, args] = inNamespace([
    "write",
    options.url,
    options.file,
    String(options.seconds),
    String(options.blockBytes),
  ]);
  const child = spawn(program, args, { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  for (const stream of [child.stdout, child.stderr]) {
    stream.setEncoding("utf8").on("data", (chunk: string) => {
      output = (output + chunk).slice(-32 * 1024);
    });
  }
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  await sleep(options.killAfterMs);
  const { takenOverBy, after } = await disrupt(killed);
  const code = await exited;
  if (code !== 0) throw new Error(`the failover writer exited ${code}:\n${output}`);
  const summary = writeSummarySchema.parse(lastJsonLine(output));
  const verify = await run(
    ...inNamespace(["verify", options.url, options.file, String(summary.acked), String(options.blockBytes)]),
    { timeoutMs: 120_000 },
  );
  const verified = verifySummarySchema.parse(lastJsonLine(`${verify.stdout}\n${verify.stderr}`));
  await after?.();
  return {
    killed,
    takenOverBy,
    stallMs: summary.stall_ms_max,
    acked: summary.acked,
    errors: summary.errors,
    verified: verified.verified,
    badBlocks: verified.bad,
    writerOutput: output,
  };
}
