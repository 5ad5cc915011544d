/**
 * The gate in front of a vserver's RPC programs, for a live move: while it is shut, new calls wait
 * (at most `heldMax` of them; more are dropped unanswered, and their clients retransmit), and a
 * suspend resolves once the calls already inside have finished. Opened again (a rolled-back move),
 * the held calls go on; abandoned (the vserver moved), they are dropped, and the clients resend
 * them to the new owner, whose moved reply cache answers any that had already run.
 */
import type { RpcHandler, RpcOutcome, RpcProgram } from "../rpc/types.ts";
import { assert } from "../util/assert.ts";

export const HELD_CALLS_MAX_DEFAULT = 4096;
const DROP: RpcOutcome = { kind: "drop" };

export class CallGate {
  private inside = 0;
  private shut = false;
  private abandoned = false;
  private readonly held: ((pass: boolean) => void)[] = [];
  private drained: (() => void) | undefined;
  private readonly heldMax: number;
  /** Calls dropped because the gate's queue was full or it was abandoned. */
  dropped = 0;

  constructor(heldMax = HELD_CALLS_MAX_DEFAULT) {
    assert(heldMax >= 0, "a gate holds zero or more calls");
    this.heldMax = heldMax;
  }

  get heldCount(): number {
    return this.held.length;
  }

  get insideCount(): number {
    return this.inside;
  }

  wrap(program: RpcProgram): RpcProgram {
    return {
      program: program.program,
      version: program.version,
      name: program.name,
      handler: (procedure) => {
        const handler = program.handler(procedure);
        return handler === undefined ? undefined : (call) => this.pass(handler, call);
      },
    };
  }

  /**
   * Shuts the gate and resolves once no call is inside; rejects (and opens it again) if they have not
   * finished within `timeoutMs`.
   */
  async shutAndDrain(timeoutMs: number): Promise<void> {
    assert(!this.abandoned, "an abandoned gate stays shut for good");
    this.shut = true;
    if (this.inside === 0) return;
    let timer: NodeJS.Timeout | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        this.drained = resolve;
        timer = setTimeout(() => {
          reject(new Error(`${this.inside} calls still running after ${timeoutMs} ms`));
        }, timeoutMs);
      });
    } catch (error) {
      this.open();
      throw error;
    } finally {
      clearTimeout(timer);
      this.drained = undefined;
    }
  }

  /** Lets every held call go on, and new ones in. */
  open(): void {
    if (this.abandoned) return;
    this.shut = false;
    for (const go of this.held.splice(0)) go(true);
  }

  /** Drops every held call and every later one: the vserver is served elsewhere now. */
  abandon(): void {
    this.abandoned = true;
    this.shut = true;
    for (const go of this.held.splice(0)) go(false);
  }

  private async pass(handler: RpcHandler, call: Parameters<RpcHandler>[0]): Promise<RpcOutcome> {
    if (this.shut) {
      if (this.abandoned || this.held.length >= this.heldMax) {
        this.dropped++;
        return DROP;
      }
      const go = await new Promise<boolean>((resolve) => this.held.push(resolve));
      if (!go) {
        this.dropped++;
        return DROP;
      }
    }
    this.inside++;
    try {
      return await handler(call);
    } finally {
      this.inside--;
      if (this.inside === 0) this.drained?.();
    }
  }
}
