import { assert } from "../util/assert.ts";
import type { RpcHandler, RpcProgram } from "./types.ts";

/** Where a call goes: a handler, or the RPC layer's own answer when there is none. */
export type Resolution =
  | { readonly kind: "handler"; readonly handler: RpcHandler; readonly program: RpcProgram }
  | { readonly kind: "prog-unavail" }
  | { readonly kind: "prog-mismatch"; readonly low: number; readonly high: number }
  | { readonly kind: "proc-unavail" };

const PROG_UNAVAIL: Resolution = { kind: "prog-unavail" };
const PROC_UNAVAIL: Resolution = { kind: "proc-unavail" };

/** The program versions a server holds, and the RFC 5531 answer for a call none of them takes. */
export class ProgramRegistry {
  private readonly byNumber = new Map<number, Map<number, RpcProgram>>();

  add(program: RpcProgram): void {
    let versions = this.byNumber.get(program.program);
    if (versions === undefined) {
      versions = new Map();
      this.byNumber.set(program.program, versions);
    }
    assert(
      !versions.has(program.version),
      `${program.name} ${program.program} v${program.version} added twice`,
    );
    versions.set(program.version, program);
  }

  resolve(programNumber: number, version: number, procedure: number): Resolution {
    const versions = this.byNumber.get(programNumber);
    if (versions === undefined) return PROG_UNAVAIL;
    const program = versions.get(version);
    if (program === undefined) {
      let low = Number.POSITIVE_INFINITY;
      let high = 0;
      for (const held of versions.keys()) {
        low = Math.min(low, held);
        high = Math.max(high, held);
      }
      return { kind: "prog-mismatch", low, high };
    }
    const handler = program.handler(procedure);
    return handler === undefined ? PROC_UNAVAIL : { kind: "handler", handler, program };
  }
}
