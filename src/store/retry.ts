import { randomInt } from "node:crypto";
import { assert } from "../util/assert.ts";
import { type Clock, systemClock } from "../util/clock.ts";
import { type Random, SeededRandom } from "../util/random.ts";
import { StoreError } from "./types.ts";

export interface RetryOptions {
  /** Calls of `operation` at the most, the first included. */
  readonly attemptsMax: number;
  /** The delay ceiling before the second attempt; it doubles for each attempt after. */
  readonly baseDelayMs: number;
  /** The delay ceiling never grows past this. */
  readonly maxDelayMs: number;
  /** Paces the delays. The system clock's timers are unref'd: a wait alone does not keep Node running. */
  readonly clock?: Clock;
  /** The jitter's source; by default seeded once per process from the OS, so nodes do not retry in step. */
  readonly random?: Random;
  /** Aborting stops the retries: the pending wait ends at once and the call rejects with the reason. */
  readonly signal?: AbortSignal;
  /** Which failures are worth another attempt; by default only StoreError UNAVAILABLE. */
  readonly isRetryable?: (error: unknown) => boolean;
}

const defaultRandom: Random = new SeededRandom(randomInt(2 ** 32 - 1));

export const isUnavailable = (error: unknown): boolean =>
  error instanceof StoreError && error.code === "UNAVAILABLE";

/**
 * The wait before attempt `attempt + 1` (attempt counts from 1): "equal jitter", half of the
 * exponential ceiling plus a random part of the other half, so waits grow for certain yet nodes that
 * failed together spread out.
 */
export function backoffDelayMs(
  attempt: number,
  options: Pick<RetryOptions, "baseDelayMs" | "maxDelayMs">,
  random: Random,
): number {
  const ceilingMs = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** Math.min(attempt - 1, 52));
  return ceilingMs / 2 + random.float() * (ceilingMs / 2);
}

/**
 * Calls `operation` until it succeeds, fails with an error that is not retryable, or has been called
 * `attemptsMax` times; then rethrows the last failure. `operation` gets the attempt number (from 1).
 */
export async function retryWithBackoff<T>(
  operation: (attempt: number) => Promise<T>,
  options: RetryOptions,
): Promise<T> {
  assert(Number.isSafeInteger(options.attemptsMax), "attemptsMax is a whole number");
  assert(options.attemptsMax >= 1, "attemptsMax is at least 1");
  assert(options.baseDelayMs >= 0, "baseDelayMs is not negative");
  assert(options.maxDelayMs >= options.baseDelayMs, "maxDelayMs is at least baseDelayMs");
  const isRetryable = options.isRetryable ?? isUnavailable;
  for (let attempt = 1; ; attempt++) {
    options.signal?.throwIfAborted();
    try {
      return await operation(attempt);
    } catch (error) {
      if (attempt >= options.attemptsMax || !isRetryable(error)) throw error;
    }
    const delayMs = backoffDelayMs(attempt, options, options.random ?? defaultRandom);
    await sleep(options.clock ?? systemClock, delayMs, options.signal);
  }
}

function sleep(clock: Clock, delayMs: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    // A clock interval of 0 would never let a manual clock's advance() finish: wait at least 1 ms.
    const timer = clock.every(Math.max(1, Math.round(delayMs)), () => done(resolve));
    const onAbort = (): void => done(() => reject(signal?.reason));
    const done = (outcome: () => void): void => {
      timer[Symbol.dispose]();
      signal?.removeEventListener("abort", onAbort);
      outcome();
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
