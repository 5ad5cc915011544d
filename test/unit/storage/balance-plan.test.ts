/**
 * The storage balancer's plan: moves from hot to cool within the dead-band rules, never a second
 * replica on one server, never past the in-flight bound, paused while degraded; full servers shed
 * chunks; and a seeded simulation of thousands of steps with shifting heat converges without flapping.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
  BALANCE_POLICY_DEFAULT,
  type BalanceChunk,
  type BalanceInput,
  type BalanceServer,
  loadRatio,
  planBalance,
  serverLoads,
} from "../../../src/storage/balance-plan.ts";
import { HOT_SHARE_DEFAULT, measureLoads } from "../../../src/storage/load-measure.ts";

const GiB = 1024 ** 3;
const CHUNK = 64 * 1024 * 1024;

function server(serverId: string, overrides: Partial<BalanceServer> = {}): BalanceServer {
  return { serverId, usable: true, baseLoad: 0, capacityBytes: 100 * GiB, allocatedBytes: 0, ...overrides };
}

function chunk(index: number, replicas: string[], heat: number, moving = false): BalanceChunk {
  return { volumeId: "v", chunkIndex: index, bytes: CHUNK, replicas, heat, moving };
}

/** Applies a plan's moves to the chunks, as the mover would once they finish. */
function apply(input: BalanceInput, moves: ReturnType<typeof planBalance>["moves"]): BalanceChunk[] {
  return input.chunks.map((c) => {
    const m = moves.find((x) => x.volumeId === c.volumeId && x.chunkIndex === c.chunkIndex);
    return m === undefined ? c : { ...c, replicas: c.replicas.map((r) => (r === m.from ? m.to : r)) };
  });
}

test("balance plan: a skewed group moves hot chunks from the hottest server to the coolest", () => {
  const servers = ["s1", "s2", "s3"].map((id) => server(id));
  const chunks = [
    chunk(0, ["s1", "s2"], 40),
    chunk(1, ["s1", "s3"], 30),
    chunk(2, ["s1", "s2"], 20),
    chunk(3, ["s2", "s3"], 5),
  ];
  const input = { servers, chunks, inFlight: 0, degraded: false };
  const plan = planBalance(input);
  assert.ok(
    plan.ratioBefore > 1.2 && plan.ratioAfter <= BALANCE_POLICY_DEFAULT.stopRatio + 0.15,
    JSON.stringify(plan),
  );
  assert.ok(plan.moves.length >= 1 && plan.moves.every((m) => m.from === "s1"));
  const after = serverLoads({ servers, chunks: apply(input, plan.moves) });
  assert.ok(loadRatio([...after.values()]) < plan.ratioBefore);
});

test("balance plan: nothing inside the dead-band, while degraded, or at the in-flight bound", () => {
  const servers = ["s1", "s2"].map((id) => server(id));
  const even = {
    servers,
    chunks: [chunk(0, ["s1"], 11), chunk(1, ["s2"], 10)],
    inFlight: 0,
    degraded: false,
  };
  assert.deepEqual(planBalance(even).moves, []);
  assert.match(planBalance(even).idle ?? "", /dead-band/);
  const skewed = { ...even, chunks: [chunk(0, ["s1"], 30), chunk(1, ["s1"], 20), chunk(2, ["s2"], 1)] };
  assert.ok(planBalance(skewed).moves.length > 0);
  assert.match(planBalance({ ...skewed, degraded: true }).idle ?? "", /degraded/);
  assert.deepEqual(planBalance({ ...skewed, degraded: true }).moves, []);
  assert.deepEqual(planBalance({ ...skewed, inFlight: BALANCE_POLICY_DEFAULT.inFlightMax }).moves, []);
});

test("balance plan: a server past its fill mark sheds chunks to the emptiest, hot or not", () => {
  const servers = [
    server("s1", { capacityBytes: 10 * CHUNK, allocatedBytes: 10 * CHUNK }),
    server("s2", { capacityBytes: 10 * CHUNK, allocatedBytes: 2 * CHUNK }),
    server("s3", { capacityBytes: 10 * CHUNK, allocatedBytes: 5 * CHUNK }),
  ];
  const chunks = Array.from({ length: 10 }, (_, i) => chunk(i, ["s1"], 1));
  const plan = planBalance({ servers, chunks, inFlight: 0, degraded: false });
  assert.ok(plan.moves.length >= 1);
  assert.equal(plan.moves[0]?.why, "full");
  assert.equal(plan.moves[0]?.to, "s2");
});

test("balance plan: an unusable server neither gives nor receives", () => {
  const servers = [server("s1"), server("s2", { usable: false }), server("s3")];
  const chunks = [chunk(0, ["s1"], 50), chunk(1, ["s1"], 40), chunk(2, ["s2"], 100)];
  const plan = planBalance({ servers, chunks, inFlight: 0, degraded: false });
  assert.ok(plan.moves.every((m) => m.from !== "s2" && m.to !== "s2"));
  assert.ok(plan.moves.some((m) => m.to === "s3"));
});

const arbitraryInput = fc
  .record({
    serverCount: fc.integer({ min: 2, max: 6 }),
    chunks: fc.array(
      fc.record({
        heat: fc.double({ min: 0, max: 100, noNaN: true }),
        picks: fc.array(fc.nat(), { minLength: 1, maxLength: 3 }),
        moving: fc.boolean(),
      }),
      { maxLength: 40 },
    ),
    inFlight: fc.integer({ min: 0, max: 5 }),
  })
  .map(({ serverCount, chunks, inFlight }): BalanceInput => {
    const ids = Array.from({ length: serverCount }, (_, i) => `s${i}`);
    return {
      servers: ids.map((id) => server(id)),
      chunks: chunks.map((c, i) => {
        const replicas = [...new Set(c.picks.map((p) => ids[p % serverCount]!))];
        return chunk(i, replicas, c.heat, c.moving);
      }),
      inFlight,
      degraded: false,
    };
  });

test("balance plan (property): never two replicas on a server, never past the bound, never a moving chunk, never worse", () => {
  fc.assert(
    fc.property(arbitraryInput, (input) => {
      const plan = planBalance(input);
      assert.ok(plan.moves.length <= Math.max(0, BALANCE_POLICY_DEFAULT.inFlightMax - input.inFlight));
      const seen = new Set<string>();
      for (const m of plan.moves) {
        const c = input.chunks.find((x) => x.chunkIndex === m.chunkIndex)!;
        assert.ok(!c.moving, "a chunk already moving is left alone");
        assert.ok(c.replicas.includes(m.from) && !c.replicas.includes(m.to));
        assert.ok(!seen.has(`${m.chunkIndex}`), "one move per chunk per plan");
        seen.add(`${m.chunkIndex}`);
      }
      for (const c of apply(input, plan.moves)) assert.equal(new Set(c.replicas).size, c.replicas.length);
      if (plan.moves.length > 0) assert.ok(plan.ratioAfter <= plan.ratioBefore + 1e-9, JSON.stringify(plan));
      else if (plan.ratioBefore > BALANCE_POLICY_DEFAULT.startRatio) assert.ok(plan.idle !== null);
    }),
    { numRuns: 500 },
  );
});

/** A small deterministic generator, so the simulation is the same on every run of a seed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

test("balance simulation: 5,000 steps of shifting heat; each calm spell converges to max/mean <= 1.2", () => {
  for (const seed of [1, 2, 3]) {
    const rand = random(seed);
    const ids = ["s1", "s2", "s3", "s4"];
    const servers = ids.map((id) => server(id));
    let chunks: BalanceChunk[] = Array.from({ length: 48 }, (_, i) => {
      const first = Math.floor(rand() * 4);
      return chunk(i, [ids[first]!, ids[(first + 1 + Math.floor(rand() * 3)) % 4]!], 1);
    });
    let moved = 0;
    let calmSteps = 0;
    let spells = 0;
    let converged = 0;
    for (let step = 0; step < 5000; step++) {
      if (step % 500 === 0) {
        // The workload shifts: a handful of chunks turn hot, the rest cool down.
        const hot = new Set(Array.from({ length: 6 }, () => Math.floor(rand() * chunks.length)));
        chunks = chunks.map((c) => ({ ...c, heat: hot.has(c.chunkIndex) ? 10 + rand() * 40 : rand() * 2 }));
        calmSteps = 0;
      }
      const input = { servers, chunks, inFlight: 0, degraded: false };
      const plan = planBalance(input);
      chunks = apply(input, plan.moves);
      moved += plan.moves.length;
      calmSteps = plan.moves.length === 0 ? calmSteps + 1 : 0;
      if (calmSteps === 50) {
        const ratio = loadRatio([...serverLoads({ servers, chunks }).values()]);
        spells++;
        if (ratio <= 1.2) converged++;
        // Otherwise no single chunk move can improve it (one chunk hotter than the gap), as it says.
        else assert.match(plan.idle ?? "", /no chunk move/, `seed ${seed} step ${step}: ratio ${ratio}`);
      }
      for (const c of chunks) assert.equal(new Set(c.replicas).size, c.replicas.length);
    }
    assert.ok(moved > 0 && moved < 5000, `seed ${seed}: ${moved} moves (no flapping)`);
    assert.ok(
      spells === 10 && converged >= 8,
      `seed ${seed}: ${converged} of ${spells} calm spells at <= 1.2`,
    );
  }
});

test("load measure: an average server measures about 1; a server with twice the mean requests is flagged", () => {
  const base = {
    readBytesPerSec: 1000,
    writeBytesPerSec: 1000,
    latencyP99Ms: 2,
    cpuBusy: 0,
    capacityBytes: 100,
    usedBytes: 0,
  };
  const loads = measureLoads([
    { serverId: "a", requestsPerSec: 100, ...base },
    { serverId: "b", requestsPerSec: 100, ...base },
    { serverId: "c", requestsPerSec: 400, ...base },
  ]);
  const [a, , c] = loads;
  assert.ok(a !== undefined && c !== undefined);
  assert.equal(a.hot, false);
  assert.equal(c.hot, true, `c serves ${c.requestShare.toFixed(2)}x the mean (> ${HOT_SHARE_DEFAULT})`);
  assert.ok(c.measure > a.measure);
  const even = measureLoads([{ serverId: "x", requestsPerSec: 50, ...base }])[0]!;
  assert.ok(Math.abs(even.measure - 0.75) < 1e-9, "the relative terms sum to 0.75 for an average server");
  const idle = measureLoads([
    {
      serverId: "y",
      requestsPerSec: 0,
      ...base,
      readBytesPerSec: 0,
      writeBytesPerSec: 0,
      latencyP99Ms: 0,
      usedBytes: 100,
    },
  ])[0]!;
  assert.ok(
    Math.abs(idle.measure - 0.1) < 1e-9 && !idle.hot,
    "an idle, full server: only its capacity counts",
  );
});
