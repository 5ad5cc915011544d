/**
 * When a chunk's copy may start over, and how long to pause first (chunk-mover.ts). Two kinds of
 * restart are bounded apart, because they fail at different rates:
 *   - content: the copy was reached but came out wrong (a mirrored write failed, a block never
 *     matched, the route changed): a count, as each means real work redone;
 *   - unreachable: a server of the copy did not answer, or answered that it lost the fill (it
 *     restarted): a time budget, because a restarted server is back, and registered at its new
 *     address, only after seconds, whatever the number of attempts meanwhile.
 * An unreachable run starts with its first restart and ends when an attempt reaches the target
 * again; a run longer than the budget gives up. Over the whole move the unreachable restarts are
 * also counted (UNREACHABLE_RESTARTS_MAX), so a server that keeps flapping cannot hold a move forever.
 */

export type RestartKind = "content" | "unreachable";

/** Pauses grow from this, doubling, up to RESTART_PAUSE_MS_MAX. */
export const RESTART_PAUSE_MS_MIN = 50;
/** About how often a restarting server is looked for again once it has been gone a while. */
export const RESTART_PAUSE_MS_MAX = 1000;
export const UNREACHABLE_RESTARTS_MAX = 64;

export type RestartDecision =
  | { readonly restart: true; readonly pauseMs: number }
  | { readonly restart: false; readonly why: string };

export class CopyRestarts {
  private readonly restartsMax: number;
  private readonly unreachableBudgetMs: number;
  private content = 0;
  private unreachable = 0;
  /** Unreachable restarts in the current run, and when its first one was. */
  private run = 0;
  private runStartedAtMs = 0;

  constructor(restartsMax: number, unreachableBudgetMs: number) {
    this.restartsMax = restartsMax;
    this.unreachableBudgetMs = unreachableBudgetMs;
  }

  /** Restarts so far, of both kinds. */
  get count(): number {
    return this.content + this.unreachable;
  }

  /**
   * Decides on a failed attempt. `reachedTarget`: the attempt got an answer from the target (its
   * fill began), which ends an unreachable run.
   */
  next(kind: RestartKind, reachedTarget: boolean, nowMs: number): RestartDecision {
    if (reachedTarget) this.run = 0;
    if (kind === "content") {
      this.content++;
      if (this.content >= this.restartsMax)
        return { restart: false, why: `copy restarted ${this.restartsMax} times` };
      return { restart: true, pauseMs: pauseMs(this.content - 1) };
    }
    this.unreachable++;
    if (this.run === 0) this.runStartedAtMs = nowMs;
    this.run++;
    const unreachableMs = nowMs - this.runStartedAtMs;
    if (unreachableMs > this.unreachableBudgetMs)
      return {
        restart: false,
        why: `a server of the copy was unreachable for ${Math.round(unreachableMs)} ms`,
      };
    if (this.unreachable > UNREACHABLE_RESTARTS_MAX)
      return {
        restart: false,
        why: `a server of the copy was unreachable ${UNREACHABLE_RESTARTS_MAX} times`,
      };
    return { restart: true, pauseMs: pauseMs(this.run - 1) };
  }
}

function pauseMs(attempt: number): number {
  return Math.min(RESTART_PAUSE_MS_MIN * 2 ** Math.min(attempt, 16), RESTART_PAUSE_MS_MAX);
}
