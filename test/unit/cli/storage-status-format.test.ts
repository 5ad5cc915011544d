import assert from "node:assert/strict";
import { test } from "node:test";
import { formatTierStatus, progressBar } from "../../../src/cli/storage-status-format.ts";
import type { TierStatus } from "../../../src/storage/tier-status.ts";

test("a progress bar is clamped and says its percentage", () => {
  assert.equal(progressBar(0, 64), `[${"-".repeat(20)}]   0%`);
  assert.equal(progressBar(32, 64), `[${"#".repeat(10)}${"-".repeat(10)}]  50%`);
  assert.equal(progressBar(99, 64), `[${"#".repeat(20)}] 100%`);
  assert.equal(progressBar(0, 0), `[${"#".repeat(20)}] 100%`, "nothing to do is done");
});

test("storage status shows each server's load and flag, moves and drains with their progress", () => {
  const load = {
    measure: 1.62,
    hot: true,
    requestsPerSec: 840,
    bytesPerSec: 3 * 1024 * 1024,
    latencyP99Ms: 2.5,
    cpuBusy: 0.41,
    networkInBytesPerSec: 1024,
    networkOutBytesPerSec: 2048,
    requestsInFlight: 3,
    sequentialShare: 0.1,
    readShare: 0.2,
  };
  const report: TierStatus & { drains: [] } = {
    servers: [
      {
        serverId: "s1",
        state: "alive",
        address: "127.0.0.1:7001",
        capacityBytes: 1 << 30,
        allocatedBytes: 1 << 20,
        chunks: 4,
        load,
      },
      {
        serverId: "s2",
        state: "dead",
        address: null,
        capacityBytes: null,
        allocatedBytes: 0,
        chunks: 0,
        load: null,
      },
    ],
    volumes: [
      {
        volumeId: "v1",
        sizeBytes: 1 << 24,
        replicationFactor: 2,
        chunks: 4,
        underReplicated: 1,
        unavailable: 0,
        moving: 1,
      },
    ],
    moves: [
      {
        volumeId: "v1",
        chunkIndex: 3,
        from: "s1",
        to: "s3",
        reason: "rebalance",
        copiedBlocks: 16,
        chunkBlocks: 64,
      },
    ],
    drains: [],
  };
  const text = formatTierStatus(report);
  assert.match(
    text,
    /^ {2}s1\s+alive\s+127\.0\.0\.1:7001\s+1\.0 MiB of 1\.0 GiB\s+4\s+1\.62 HOT\s+840\s+3\.0 MiB\s+2\.5 ms\s+41%/m,
  );
  assert.match(text, /^ {2}s2\s+dead\s+-\s+0 B of \?\s+0\s+-/m);
  assert.match(text, /HOT: serving more than 1\.5x/);
  assert.match(text, /1 chunks under-replicated \(re-replicating\), 1 moving/);
  assert.match(text, /v1 chunk 3: s1 -> s3 \(rebalance\) \[#####-+\] {2}25% 16\/64 blocks/);
});
