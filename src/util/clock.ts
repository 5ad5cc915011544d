import type { Timespec } from "../fs/types.ts";

/** Time comes in through this interface so tests and the simulator can drive it. */
export interface Clock {
  /** Wall-clock time with nanoseconds, for file timestamps. */
  now(): Timespec;
  /** Monotonic milliseconds, for intervals and timeouts. */
  monotonicMs(): number;
  /** Calls `fn` every `intervalMs` until disposed; the timer never keeps the process alive. */
  every(intervalMs: number, fn: () => void): Disposable;
}

export const systemClock: Clock = {
  now(): Timespec {
    const ns = process.hrtime.bigint() - hrtimeAtStart + wallNsAtStart;
    return { sec: Number(ns / 1_000_000_000n), nsec: Number(ns % 1_000_000_000n) };
  },
  monotonicMs(): number {
    return performance.now();
  },
  every(intervalMs: number, fn: () => void): Disposable {
    const timer = setInterval(fn, intervalMs);
    timer.unref();
    return { [Symbol.dispose]: () => clearInterval(timer) };
  },
};

// Anchor a nanosecond wall clock on the monotonic one: Date.now() alone has only milliseconds.
const hrtimeAtStart = process.hrtime.bigint();
const wallNsAtStart = BigInt(Date.now()) * 1_000_000n;

/** A clock that moves only when told to: for deterministic tests. */
export class ManualClock implements Clock {
  private ns: bigint;
  private readonly timers = new Set<{ intervalMs: number; dueMs: number; fn: () => void }>();
  constructor(startSec = 1_700_000_000) {
    this.ns = BigInt(startSec) * 1_000_000_000n;
  }
  now(): Timespec {
    return { sec: Number(this.ns / 1_000_000_000n), nsec: Number(this.ns % 1_000_000_000n) };
  }
  monotonicMs(): number {
    return Number(this.ns / 1_000_000n);
  }
  every(intervalMs: number, fn: () => void): Disposable {
    const timer = { intervalMs, dueMs: this.monotonicMs() + intervalMs, fn };
    this.timers.add(timer);
    return { [Symbol.dispose]: () => this.timers.delete(timer) };
  }
  /** Moves time forward by `ms` (sub-millisecond steps allowed) and fires due timers. */
  advance(ms: number): void {
    this.ns += BigInt(Math.round(ms * 1_000_000));
    const nowMs = this.monotonicMs();
    for (const timer of this.timers) {
      while (timer.dueMs <= nowMs) {
        timer.dueMs += timer.intervalMs;
        timer.fn();
      }
    }
  }
}
