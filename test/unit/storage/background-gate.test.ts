import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import fc from "fast-check";
import {
  BACKGROUND_GATE_DEFAULTS,
  BackgroundGate,
  backgroundMayStart,
  type GateState,
} from "../../../src/storage/background-gate.ts";
import { StorageError } from "../../../src/storage/types.ts";

const limits = { quietMs: 2, waitMaxMs: 30, inFlightMax: 2, waitingMax: 3 };

describe("background gate: the rule", () => {
  it("lets background work start only when clients are quiet, up to its in-flight bound", () => {
    const quiet: GateState = {
      foregroundInFlight: 0,
      backgroundInFlight: 0,
      msSinceForeground: 5,
      waitedMs: 0,
    };
    assert.equal(backgroundMayStart(quiet, limits), true);
    assert.equal(backgroundMayStart({ ...quiet, backgroundInFlight: 2 }, limits), false);
    assert.equal(
      backgroundMayStart({ ...quiet, msSinceForeground: 1 }, limits),
      false,
      "inside the quiet spell",
    );
    assert.equal(backgroundMayStart({ ...quiet, foregroundInFlight: 1 }, limits), false);
  });

  it("never lets two background requests run beside clients, and lets one through after its wait bound", () => {
    fc.assert(
      fc.property(
        fc.record({
          foregroundInFlight: fc.integer({ min: 1, max: 64 }),
          backgroundInFlight: fc.integer({ min: 0, max: 8 }),
          msSinceForeground: fc.double({ min: 0, max: 1000, noNaN: true }),
          waitedMs: fc.double({ min: 0, max: 1000, noNaN: true }),
        }),
        (state) => {
          const may = backgroundMayStart(state, BACKGROUND_GATE_DEFAULTS);
          assert.equal(
            may,
            state.backgroundInFlight === 0 && state.waitedMs >= BACKGROUND_GATE_DEFAULTS.waitMaxMs,
          );
        },
      ),
    );
  });
});

describe("background gate", () => {
  it("holds a background request while a client's request is in flight, then runs it", async () => {
    const gate = new BackgroundGate({ ...limits, waitMaxMs: 10_000 });
    let releaseClient = (): void => undefined;
    const client = gate.foreground(() => new Promise<void>((resolve) => (releaseClient = resolve)));
    let ran = false;
    const copy = gate.background(async () => {
      ran = true;
    });
    await sleep(30);
    assert.equal(ran, false, "the copy waits while the client's write is in flight");
    releaseClient();
    await client;
    await copy;
    assert.equal(ran, true);
    assert.equal(gate.counters().delayed, 1);
    assert.equal(gate.counters().forced, 0);
  });

  it("runs a client's work synchronously, so its place in the chunk's queue is kept", () => {
    const gate = new BackgroundGate(limits);
    let called = false;
    const done = gate.foreground(async () => {
      called = true;
    });
    assert.equal(called, true);
    return done;
  });

  it("lets one background request through after the wait bound when clients never stop", async () => {
    const gate = new BackgroundGate(limits);
    let busy = true;
    const clients = (async () => {
      while (busy) await gate.foreground(() => sleep(1));
    })();
    const startedAt = performance.now();
    let concurrent = 0;
    let concurrentMax = 0;
    const copies = Array.from({ length: 3 }, () =>
      gate.background(async () => {
        concurrent++;
        concurrentMax = Math.max(concurrentMax, concurrent);
        await sleep(5);
        concurrent--;
      }),
    );
    await Promise.all(copies);
    busy = false;
    await clients;
    assert.ok(performance.now() - startedAt >= limits.waitMaxMs, "the first copy waited its bound");
    assert.equal(concurrentMax, 1, "beside busy clients, background requests go one at a time");
    assert.ok(gate.counters().forced >= 1);
  });

  it("by default keeps half of libuv's four file-system threads free of background work on a quiet server", async () => {
    const gate = new BackgroundGate();
    let running = 0;
    let runningMax = 0;
    await Promise.all(
      Array.from({ length: 6 }, () =>
        gate.background(async () => {
          running++;
          runningMax = Math.max(runningMax, running);
          await sleep(5);
          running--;
        }),
      ),
    );
    assert.equal(runningMax, 2);
  });

  it("refuses background work beyond its waiting bound with a retryable error", async () => {
    const gate = new BackgroundGate({ ...limits, waitMaxMs: 10_000 });
    let releaseClient = (): void => undefined;
    const client = gate.foreground(() => new Promise<void>((resolve) => (releaseClient = resolve)));
    const waiting = Array.from({ length: limits.waitingMax }, () => gate.background(async () => undefined));
    await sleep(5);
    await assert.rejects(
      gate.background(async () => undefined),
      (error: unknown) => error instanceof StorageError && error.code === "UNAVAILABLE",
    );
    releaseClient();
    await client;
    await Promise.all(waiting);
  });
});
