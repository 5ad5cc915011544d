/**
 * Foreground first on one storage server: background requests (a chunk copy's reads and writes, a
 * verification's checksums) wait while clients' requests are in flight, and for a short quiet spell
 * after the last one, so a client's write never queues behind a 1 MiB copy on the chunk's queue
 * or the disk. A background request that has waited `waitMaxMs` goes anyway, one at a time, so a
 * server that is never idle still moves its chunks (slowly) instead of starving the balancer.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { assert } from "../util/assert.ts";
import { StorageError } from "./types.ts";

export interface BackgroundGateLimits {
  /** A background request waits this long after the last foreground request finished. */
  readonly quietMs: number;
  /** The longest a background request waits for quiet before it goes anyway (alone). */
  readonly waitMaxMs: number;
  /** Background requests at once when the server is quiet. */
  readonly inFlightMax: number;
  /** Background requests waiting at once; more is a client (mover) out of bounds: BUSY. */
  readonly waitingMax: number;
}

export const BACKGROUND_GATE_DEFAULTS: BackgroundGateLimits = {
  quietMs: 2,
  waitMaxMs: 25,
  // Half of libuv's four file-system threads: a background request may end in an fsync that holds
  // its thread for as long as the disk takes, and a client arriving in the quiet spell must still
  // find a thread for its write.
  inFlightMax: 2,
  waitingMax: 1024,
};

export interface GateState {
  readonly foregroundInFlight: number;
  readonly backgroundInFlight: number;
  readonly msSinceForeground: number;
  /** How long the request asking has waited. */
  readonly waitedMs: number;
}

/** Whether a waiting background request may start now (pure). */
export function backgroundMayStart(state: GateState, limits: BackgroundGateLimits): boolean {
  const quiet = state.foregroundInFlight === 0 && state.msSinceForeground >= limits.quietMs;
  if (quiet) return state.backgroundInFlight < limits.inFlightMax;
  // Busy: a request that has waited its bound goes, but never two background requests beside clients.
  return state.waitedMs >= limits.waitMaxMs && state.backgroundInFlight === 0;
}

export interface BackgroundGateCounters {
  /** Background requests that had to wait. */
  readonly delayed: number;
  /** Their total wait. */
  readonly delayedMs: number;
  /** Background requests that went after `waitMaxMs` although clients were busy. */
  readonly forced: number;
}

export class BackgroundGate {
  private foregroundInFlight = 0;
  private backgroundInFlight = 0;
  private lastForegroundMs = Number.NEGATIVE_INFINITY;
  private waiting = 0;
  private delayed = 0;
  private delayedMs = 0;
  private forced = 0;

  readonly limits: BackgroundGateLimits;

  constructor(limits: Partial<BackgroundGateLimits> = {}) {
    this.limits = { ...BACKGROUND_GATE_DEFAULTS, ...limits };
    assert(this.limits.inFlightMax >= 1, "the gate admits at least one background request");
    assert(this.limits.waitMaxMs >= this.limits.quietMs, "the wait bound covers the quiet spell");
  }

  /**
   * Runs a client's request. `work` is called synchronously, so the request keeps its place in the
   * chunk's queue in the order the connection delivered it.
   */
  async foreground<T>(work: () => Promise<T>): Promise<T> {
    this.foregroundInFlight++;
    try {
      return await work();
    } finally {
      this.foregroundInFlight--;
      assert(this.foregroundInFlight >= 0, "foreground requests in flight never go negative");
      this.lastForegroundMs = performance.now();
    }
  }

  /** Runs a background request once the clients leave room for it. */
  async background<T>(work: () => Promise<T>): Promise<T> {
    await this.admit();
    try {
      return await work();
    } finally {
      this.backgroundInFlight--;
      assert(this.backgroundInFlight >= 0, "background requests in flight never go negative");
    }
  }

  counters(): BackgroundGateCounters {
    return { delayed: this.delayed, delayedMs: this.delayedMs, forced: this.forced };
  }

  private async admit(): Promise<void> {
    const startedAt = performance.now();
    let waited = false;
    for (;;) {
      const now = performance.now();
      const state: GateState = {
        foregroundInFlight: this.foregroundInFlight,
        backgroundInFlight: this.backgroundInFlight,
        msSinceForeground: now - this.lastForegroundMs,
        waitedMs: now - startedAt,
      };
      if (backgroundMayStart(state, this.limits)) {
        this.backgroundInFlight++;
        if (waited) {
          this.waiting--;
          this.delayed++;
          this.delayedMs += now - startedAt;
          if (state.foregroundInFlight > 0) this.forced++;
        }
        return;
      }
      if (!waited) {
        if (this.waiting >= this.limits.waitingMax) {
          throw new StorageError(
            "UNAVAILABLE",
            `${this.waiting} background requests already wait for the clients to leave room; try later`,
          );
        }
        this.waiting++;
        waited = true;
      }
      // Polling at the quiet spell's grain: cheap (a few comparisons) and bounded by waitMaxMs.
      await sleep(Math.max(1, this.limits.quietMs));
    }
  }
}
