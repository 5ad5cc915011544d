/**
 * Limits on background data movement, so it never starves client I/O: a byte rate shared by every
 * move (token bucket), and a cap on moves touching one server at once.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { assert } from "../util/assert.ts";

export class Throttle {
  private tokens: number;
  private lastRefillMs = performance.now();
  /** Serializes waiters so a big request cannot be overtaken forever by small ones. */
  private queue: Promise<void> = Promise.resolve();

  readonly bytesPerSecond: number;

  /** `bytesPerSecond` 0 means unlimited. A burst of one second's worth is allowed. */
  constructor(bytesPerSecond: number) {
    this.bytesPerSecond = bytesPerSecond;
    assert(bytesPerSecond >= 0, "a rate is not negative");
    this.tokens = bytesPerSecond;
  }

  /** Resolves once `bytes` may be moved. */
  take(bytes: number): Promise<void> {
    if (this.bytesPerSecond === 0) return Promise.resolve();
    const turn = this.queue.then(() => this.wait(bytes));
    this.queue = turn.catch(() => undefined);
    return turn;
  }

  private async wait(bytes: number): Promise<void> {
    for (;;) {
      const now = performance.now();
      this.tokens = Math.min(
        this.bytesPerSecond,
        this.tokens + ((now - this.lastRefillMs) * this.bytesPerSecond) / 1000,
      );
      this.lastRefillMs = now;
      // A request larger than the bucket goes once the bucket is full, leaving it in debt.
      if (this.tokens >= Math.min(bytes, this.bytesPerSecond)) {
        this.tokens -= bytes;
        return;
      }
      await sleep(
        Math.max(1, ((Math.min(bytes, this.bytesPerSecond) - this.tokens) * 1000) / this.bytesPerSecond),
      );
    }
  }
}

/** At most `limit` holders per key at once (moves per storage server). */
export class KeyedSemaphore {
  private readonly held = new Map<string, number>();
  private readonly waiters: { keys: readonly string[]; wake: () => void }[] = [];

  readonly limit: number;

  constructor(limit: number) {
    this.limit = limit;
    assert(limit >= 1, "a semaphore admits at least one");
  }

  /** Waits until every key has room, then holds one slot of each until the result is disposed. */
  async acquire(keys: readonly string[]): Promise<Disposable> {
    if (this.fits(keys) && this.waiters.length === 0) {
      for (const key of keys) this.held.set(key, (this.held.get(key) ?? 0) + 1);
    } else {
      // release() takes the slots on this waiter's behalf before waking it.
      await new Promise<void>((wake) => this.waiters.push({ keys, wake }));
    }
    return { [Symbol.dispose]: () => this.release(keys) };
  }

  private fits(keys: readonly string[]): boolean {
    return keys.every((key) => (this.held.get(key) ?? 0) < this.limit);
  }

  private release(keys: readonly string[]): void {
    for (const key of keys) {
      const left = (this.held.get(key) ?? 0) - 1;
      assert(left >= 0, "released more than held");
      if (left === 0) this.held.delete(key);
      else this.held.set(key, left);
    }
    // Wake, in order, every waiter that now fits (they take their slots synchronously on wake-up).
    for (let i = 0; i < this.waiters.length; ) {
      const waiter = this.waiters[i] as { keys: readonly string[]; wake: () => void };
      if (this.fits(waiter.keys)) {
        this.waiters.splice(i, 1);
        for (const key of waiter.keys) this.held.set(key, (this.held.get(key) ?? 0) + 1);
        waiter.wake();
      } else i++;
    }
  }
}
