/**
 * `flotilla storage status|drain|undrain` through the admin API, as they run against `npm start`
 * (no etcd): three real storage servers publishing their loads, a verifying write load, the status
 * with loads and the measure, a drain followed to its end with progress, and a drain with nowhere to
 * go refused with its reason.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { pino } from "pino";
import { AdminServer } from "../../src/api/admin-server.ts";
import type { TierStatus } from "../../src/storage/tier-status.ts";
import { MAIN } from "../support/flotilla-process.ts";
import { StorageTestCluster } from "../support/storage-cluster.ts";
import { until } from "../support/until.ts";
import { replicasAgree, WriteLoad } from "../support/write-load.ts";
import { run } from "./tools.ts";

const MiB = 1024 * 1024;
const CHUNK_BLOCKS = 64;
let dir: string;
let tier: StorageTestCluster;
let api: AdminServer;

const flotilla = (...args: string[]) =>
  run(process.execPath, [MAIN, ...args, "--api", api.url, "--token-file", join(dir, "admin-token")], {
    timeoutMs: 120_000,
  });

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "flotilla-storage-api-"));
  tier = await StorageTestCluster.start({ servers: 3 });
  api = await AdminServer.start({
    store: tier.store,
    registry: tier.registry,
    port: 0,
    tokenFile: join(dir, "admin-token"),
    logger: pino({ level: "silent" }),
  });
});

after(async () => {
  await api.close();
  await tier.close();
  await rm(dir, { recursive: true, force: true });
});

test("storage status and drain through the admin API: loads, the measure, a drain's progress, its refusal", async () => {
  await tier.createVolume("vapi", 8 * MiB, 1, CHUNK_BLOCKS);
  const { device } = await tier.openDevice("vapi");
  const load = new WriteLoad(device, { blockSpan: (8 * MiB) / 4096, writers: 4, seed: 7 });
  load.start();
  try {
    // Every server publishes its load within a couple of publishing intervals.
    const report = await until(
      "every server's load in storage status",
      async () => {
        const result = await flotilla("storage", "status", "--json");
        assert.equal(result.status, 0, result.stderr);
        const parsed = JSON.parse(result.stdout) as TierStatus;
        return parsed.servers.every((s) => s.load !== null && s.load.requestsPerSec > 0) ? parsed : undefined;
      },
      20_000,
      250,
    );
    assert.deepEqual(
      report.servers.map((s) => [s.serverId, s.state]),
      [
        ["s1", "alive"],
        ["s2", "alive"],
        ["s3", "alive"],
      ],
    );
    for (const s of report.servers) assert.ok(s.load!.measure > 0, `${s.serverId} has a load measure`);
    const human = await flotilla("storage", "status");
    assert.equal(human.status, 0, human.stderr);
    assert.match(human.stdout, /SERVER\s+STATE\s+ADDRESS\s+PLACED\s+CHUNKS\s+LOAD\s+REQ\/S/);
    assert.match(human.stdout, /^\s+s1\s+alive\s+127\.0\.0\.1:\d+\s+.*\d\.\d\d/m);

    const chunksOnS1 = report.servers.find((s) => s.serverId === "s1")!.chunks;
    assert.ok(chunksOnS1 > 0, "s1 holds chunks to drain");
    const drained = await flotilla("storage", "drain", "s1");
    assert.equal(drained.status, 0, drained.stderr);
    assert.match(drained.stderr, /drain s1: \d+\/\d+ chunks/, "progress lines while it runs");
    assert.match(drained.stdout, new RegExp(`drained s1: ${chunksOnS1} chunks`));
    const after = JSON.parse((await flotilla("storage", "status", "--json")).stdout) as TierStatus & {
      drains: { serverId: string; state: string }[];
    };
    assert.deepEqual(
      after.servers.map((s) => [s.serverId, s.state, s.serverId === "s1" ? s.chunks : "-"]),
      [
        ["s1", "draining", 0],
        ["s2", "alive", "-"],
        ["s3", "alive", "-"],
      ],
    );
    assert.deepEqual(after.drains, [{ ...after.drains[0], serverId: "s1", state: "done" }]);
    assert.deepEqual(after.moves, [], "no move left behind");

    // An unknown server, and a drain whose chunks would have nowhere to go once s2 is drained too.
    const ghost = await flotilla("storage", "drain", "s9");
    assert.equal(ghost.status, 3, ghost.stderr);
    assert.match(ghost.stderr, /s9 is not registered/);
    // A move may give up under the steady writer (its copy restarted too often); the drain says so,
    // and running it again finishes it, as `storage drain --help` tells operators.
    let second = await flotilla("storage", "drain", "s2");
    if (second.status === 1 && /could not be moved off s2/.test(second.stderr))
      second = await flotilla("storage", "drain", "s2");
    assert.equal(second.status, 0, second.stderr);
    const stuck = await flotilla("storage", "drain", "s3");
    assert.equal(stuck.status, 1, stuck.stderr);
    assert.match(stuck.stderr, /storage drain: cannot drain s3: .*nowhere to go/);
    const undrained = await flotilla("storage", "undrain", "s1");
    assert.equal(undrained.status, 0, undrained.stderr);
    assert.match(undrained.stdout, /s1 takes new chunks again/);
  } finally {
    await load.stop();
  }
  assert.deepEqual(load.errors, [], "no client write failed");
  assert.ok((await load.verify()) > 0, "every acknowledged write reads back");
  await replicasAgree(device, tier.registry);
});
