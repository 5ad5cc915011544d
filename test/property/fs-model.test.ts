/**
 * Model-based property test of the volume file system: random op sequences run on the reference model
 * (test/support/model-volume.ts) and on a real volume over a memory device; every op must give the same
 * error code or the same observable result, and the whole trees must match periodically and at the end.
 *
 * FLOTILLA_PROPERTY_RUNS sets the number of sequences; FLOTILLA_PROPERTY_SEED (and
 * FLOTILLA_PROPERTY_PATH) replay a failure that fast-check reported.
 * FLOTILLA_MODEL_SELFTEST=1 runs the model against itself (to test the harness).
 */
import { test } from "node:test";
import fc from "fast-check";
import { MemoryBlockDevice } from "../../src/block/index.ts";
import { envInt, runModelSequence } from "../support/model-sequence.ts";
import { opArbitrary, PROPERTY_PROFILE } from "../support/op-arbitraries.ts";

const DEVICE_BLOCKS = 16_384; // 64 MiB

test("random operation sequences: the volume behaves as the reference model", async () => {
  const seedText = process.env.FLOTILLA_PROPERTY_SEED;
  const path = process.env.FLOTILLA_PROPERTY_PATH;
  await fc.assert(
    fc.asyncProperty(fc.array(opArbitrary(PROPERTY_PROFILE), { minLength: 30, maxLength: 80 }), (ops) =>
      runModelSequence(ops, new MemoryBlockDevice(DEVICE_BLOCKS)),
    ),
    {
      numRuns: envInt("FLOTILLA_PROPERTY_RUNS", 150),
      verbose: 1,
      ...(seedText === undefined ? {} : { seed: Number(seedText) }),
      ...(path === undefined ? {} : { path }),
    },
  );
});
