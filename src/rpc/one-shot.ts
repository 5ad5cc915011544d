import type { Clock } from "../util/clock.ts";

/** Calls `fn` once after `delayMs` unless disposed first; built on the injected clock's timer. */
export function afterDelay(clock: Clock, delayMs: number, fn: () => void): Disposable {
  let done = false;
  const timer = clock.every(delayMs, () => {
    if (done) return;
    done = true;
    timer[Symbol.dispose]();
    fn();
  });
  return {
    [Symbol.dispose]: () => {
      done = true;
      timer[Symbol.dispose]();
    },
  };
}
