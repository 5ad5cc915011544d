/**
 * Tickle ACKs after a VIP moves (CTDB's idea): the new holder sends each client of the VIP's old
 * connections an ACK with sequence numbers 0 from VIP:port; the client answers with its real numbers,
 * the new holder's kernel (which has no such connection) answers that with a RST, and the client
 * reconnects at once instead of at its next retransmission, seconds later after a failover's backoff.
 * The packets come from native/tickle-ack.c; this file builds its command lines and reads its report.
 */
import { assert } from "../util/assert.ts";
import { parseIpv4 } from "./cidr.ts";
import { nativeProgram } from "./native-build.ts";
import type { TcpConnection } from "./tcp-connections.ts";

/** Copies of each tickle: one lost on the wire must not leave a client waiting (CTDB sends 3 too). */
export const TICKLE_ROUNDS = 3;
/** Pairs per run of the program: 1024 pairs are ~45 KB of arguments, far inside the kernel's ARG_MAX. */
export const TICKLE_PAIRS_PER_RUN_MAX = 1024;

const PROGRAM = "tickle-ack";

/** The tickle program, built on first use into `cacheDir` (default: under the OS temp directory). */
export function tickleProgram(cacheDir?: string): Promise<string> {
  return nativeProgram(PROGRAM, "the Linux VIP driver's tickle ACKs", cacheDir);
}

/** The runs that tickle every one of `connections` (each from `vip`), at most TICKLE_PAIRS_PER_RUN_MAX a run. */
export function tickleArgvs(
  program: string,
  vip: string,
  connections: readonly TcpConnection[],
  rounds: number = TICKLE_ROUNDS,
): string[][] {
  parseIpv4(vip);
  assert(Number.isInteger(rounds) && rounds >= 1 && rounds <= 10, `tickle rounds ${rounds} not in 1..10`);
  const argvs: string[][] = [];
  for (let start = 0; start < connections.length; start += TICKLE_PAIRS_PER_RUN_MAX) {
    const argv = [program, String(rounds)];
    for (const { local, remote } of connections.slice(start, start + TICKLE_PAIRS_PER_RUN_MAX)) {
      // A tickle from another address would be answered to that address, never reaching the new holder.
      assert(local.ip === vip, `connection ${local.ip}:${local.port} is not on VIP ${vip}`);
      argv.push(`${local.ip}:${local.port}`, `${remote.ip}:${remote.port}`);
    }
    argvs.push(argv);
  }
  return argvs;
}

/** How many of its packets a run says it sent ("sent N of M"), or undefined when it printed no report. */
export function parseTickleReport(
  stdout: string,
): { readonly sentCount: number; readonly totalCount: number } | undefined {
  const match = /^sent (\d+) of (\d+)$/m.exec(stdout);
  return match === null ? undefined : { sentCount: Number(match[1]), totalCount: Number(match[2]) };
}
