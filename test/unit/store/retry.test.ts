import assert from "node:assert/strict";
import { test } from "node:test";
import { type RetryOptions, retryWithBackoff, StoreError } from "../../../src/store/index.ts";
import { backoffDelayMs } from "../../../src/store/retry.ts";
import { ManualClock } from "../../../src/util/clock.ts";
import { SeededRandom } from "../../../src/util/random.ts";

const OPTIONS = { attemptsMax: 5, baseDelayMs: 100, maxDelayMs: 1000 } as const;
/** Far beyond any schedule here: a retry loop that never settles fails the test instead of hanging it. */
const STEPS_MAX = 100_000;

const unavailable = (n: number) => new StoreError("UNAVAILABLE", `attempt ${n}: etcd unreachable`);

interface RetryRun<T> {
  readonly value?: T;
  readonly error?: unknown;
  /** The manual clock's time at each call of the operation. */
  readonly attemptAtMs: readonly number[];
}

/**
 * Runs `operation` under retryWithBackoff on a manual clock, moved on 1 ms per turn of the event
 * loop until the retry settles.
 */
async function runRetry<T>(
  operation: (attempt: number) => Promise<T>,
  options: Partial<RetryOptions> = {},
): Promise<RetryRun<T>> {
  const clock = new ManualClock();
  const attemptAtMs: number[] = [];
  let outcome: { value?: T; error?: unknown } | undefined;
  retryWithBackoff(
    (attempt) => {
      attemptAtMs.push(clock.monotonicMs());
      return operation(attempt);
    },
    { ...OPTIONS, clock, ...options },
  ).then(
    (value) => {
      outcome = { value };
    },
    (error: unknown) => {
      outcome = { error };
    },
  );
  for (let step = 0; outcome === undefined && step < STEPS_MAX; step++) {
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (outcome === undefined) clock.advance(1);
  }
  assert.ok(outcome !== undefined, "the retry never settled");
  return { ...outcome, attemptAtMs };
}

test("retry: UNAVAILABLE is retried with growing, jittered waits until the operation succeeds", async () => {
  const run = await runRetry(
    async (attempt) => {
      if (attempt < 4) throw unavailable(attempt);
      return "done";
    },
    { random: new SeededRandom(7) },
  );
  assert.equal(run.value, "done");
  assert.equal(run.attemptAtMs.length, 4);
  const waits = run.attemptAtMs.slice(1).map((at, i) => at - run.attemptAtMs[i]!);
  // Ceilings 100, 200, 400 ms; equal jitter waits between half the ceiling and all of it (+1 ms of stepping).
  [100, 200, 400].forEach((ceilingMs, i) => {
    assert.ok(waits[i]! >= ceilingMs / 2 && waits[i]! <= ceilingMs + 1, `wait ${i + 1} was ${waits[i]} ms`);
  });
});

test("retry: gives up after attemptsMax and rethrows the last failure", async () => {
  const thrown: StoreError[] = [];
  const run = await runRetry(async (attempt) => {
    thrown.push(unavailable(attempt));
    throw thrown.at(-1);
  });
  assert.equal(thrown.length, OPTIONS.attemptsMax);
  assert.equal(run.error, thrown.at(-1));
});

test("retry: other failures are not retried, unless isRetryable says so", async () => {
  const lost = new StoreError("LEASE_LOST", "lease 7 expired");
  const once = await runRetry(async () => {
    throw lost;
  });
  assert.equal(once.error, lost);
  assert.equal(once.attemptAtMs.length, 1, "no second attempt");

  const flaky = (error: unknown) => error instanceof Error && error.message === "flaky";
  const custom = await runRetry(
    async (attempt) => {
      if (attempt === 1) throw new Error("flaky");
      return attempt;
    },
    { isRetryable: flaky },
  );
  assert.equal(custom.value, 2);
});

test("retry: an abort ends the wait at once and rejects with the abort's reason", async () => {
  const clock = new ManualClock();
  const controller = new AbortController();
  let calls = 0;
  const retrying = retryWithBackoff(
    async (attempt) => {
      calls++;
      throw unavailable(attempt);
    },
    { ...OPTIONS, clock, signal: controller.signal },
  );
  await new Promise<void>((resolve) => setImmediate(resolve));
  const reason = new Error("shutting down");
  controller.abort(reason);
  await assert.rejects(retrying, (error: unknown) => error === reason);
  assert.equal(calls, 1);
  await assert.rejects(
    retryWithBackoff(async () => 1, { ...OPTIONS, clock, signal: AbortSignal.abort(reason) }),
    (error: unknown) => error === reason,
  );
});

test("retry: the wait ceiling doubles per attempt up to maxDelayMs", () => {
  const random = new SeededRandom(1);
  for (let attempt = 1; attempt <= 80; attempt++) {
    const ceilingMs = Math.min(OPTIONS.maxDelayMs, OPTIONS.baseDelayMs * 2 ** (attempt - 1));
    const delayMs = backoffDelayMs(attempt, OPTIONS, random);
    assert.ok(delayMs >= ceilingMs / 2 && delayMs <= ceilingMs, `attempt ${attempt}: ${delayMs} ms`);
  }
});
