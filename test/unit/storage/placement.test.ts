import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
  chooseTarget,
  PlacementError,
  placeChunks,
  type ServerSpace,
} from "../../../src/storage/placement.ts";

const MiB = 1024 * 1024;

const serversArbitrary = fc.uniqueArray(
  fc.record({
    serverId: fc.stringMatching(/^[a-z][a-z0-9]{0,5}$/),
    capacityBytes: fc.integer({ min: 0, max: 64 }).map((n) => n * 4 * MiB),
    allocatedBytes: fc.integer({ min: 0, max: 16 }).map((n) => n * 4 * MiB),
  }),
  { selector: (s) => s.serverId, minLength: 1, maxLength: 8 },
);

test("placement: every chunk gets distinct servers, never beyond any server's free space", () => {
  fc.assert(
    fc.property(
      serversArbitrary,
      fc.integer({ min: 1, max: 40 }),
      fc.integer({ min: 1, max: 3 }),
      (servers, chunks, rf) => {
        let placement: string[][];
        try {
          placement = placeChunks(servers, chunks, 4 * MiB, rf);
        } catch (error) {
          assert.ok(error instanceof PlacementError);
          // It may refuse only when the servers really cannot hold it.
          const free = servers.map((s) =>
            Math.max(0, Math.floor((s.capacityBytes - s.allocatedBytes) / (4 * MiB))),
          );
          const eligible = free.filter((f) => f > 0).length;
          const total = free.reduce((a, b) => a + Math.min(b, chunks), 0);
          assert.ok(servers.length < rf || eligible < rf || total < chunks * rf, error.message);
          return;
        }
        assert.equal(placement.length, chunks);
        const used = new Map<string, number>();
        for (const replicas of placement) {
          assert.equal(replicas.length, rf);
          assert.equal(new Set(replicas).size, rf, "replicas of one chunk are on distinct servers");
          for (const id of replicas) used.set(id, (used.get(id) ?? 0) + 4 * MiB);
        }
        for (const s of servers) {
          assert.ok(
            (used.get(s.serverId) ?? 0) <= Math.max(0, s.capacityBytes - s.allocatedBytes),
            `${s.serverId} overfilled`,
          );
        }
      },
    ),
  );
});

test("placement: equal servers share a volume evenly", () => {
  const servers: ServerSpace[] = ["a", "b", "c"].map((serverId) => ({
    serverId,
    capacityBytes: 1024 * MiB,
    allocatedBytes: 0,
  }));
  const placement = placeChunks(servers, 30, 4 * MiB, 2);
  const counts = new Map<string, number>();
  for (const id of placement.flat()) counts.set(id, (counts.get(id) ?? 0) + 1);
  assert.deepEqual([...counts.values()].sort(), [20, 20, 20]);
});

test("placement: the emptiest server takes the chunks first", () => {
  const servers: ServerSpace[] = [
    { serverId: "full", capacityBytes: 100 * MiB, allocatedBytes: 90 * MiB },
    { serverId: "empty", capacityBytes: 100 * MiB, allocatedBytes: 0 },
  ];
  assert.deepEqual(placeChunks(servers, 2, 4 * MiB, 1), [["empty"], ["empty"]]);
});

test("placement: clear errors when there are too few servers or too little space", () => {
  const one: ServerSpace[] = [{ serverId: "a", capacityBytes: 100 * MiB, allocatedBytes: 0 }];
  assert.throws(
    () => placeChunks(one, 1, 4 * MiB, 2),
    /replication factor 2 needs 2 storage servers; 1 alive/,
  );
  assert.throws(() => placeChunks(one, 30, 4 * MiB, 1), /not enough free space/);
});

test("choosing a move target: most free space, never an excluded or full server", () => {
  const servers: ServerSpace[] = [
    { serverId: "a", capacityBytes: 100 * MiB, allocatedBytes: 0 },
    { serverId: "b", capacityBytes: 100 * MiB, allocatedBytes: 50 * MiB },
    { serverId: "c", capacityBytes: 100 * MiB, allocatedBytes: 98 * MiB },
  ];
  assert.equal(chooseTarget(servers, new Set(), 4 * MiB), "a");
  assert.equal(chooseTarget(servers, new Set(["a"]), 4 * MiB), "b");
  assert.equal(chooseTarget(servers, new Set(["a", "b"]), 4 * MiB), undefined, "c has 2 MiB free");
});
