/**
 * A balancer's move whose target is killed mid-copy (a crash: connections cut, its in-memory filling
 * state gone, its lease left to run out) and restarted 0.3 s later on a new port: the copies that
 * involved that server restart and finish, no other copy restarts, the load still spreads, every
 * acknowledged write reads back and the replicas agree.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { pino } from "pino";
import { currentLoadRatio, StorageBalancer } from "../../src/storage/balancer.ts";
import type { MovePlan, MoveRestart } from "../../src/storage/chunk-mover.ts";
import { balanceUntilSpread, SkewedWriter } from "../support/skewed-writer.ts";
import { StorageTestCluster } from "../support/storage-cluster.ts";
import { replicasAgree } from "../support/write-load.ts";

const MiB = 1024 * 1024;
const CHUNK_BLOCKS = 64;
/** How long the killed server stays down: its lease (2 s) is still alive when it registers again. */
const DOWN_MS = 300;
let cluster: StorageTestCluster;

before(async () => {
  cluster = await StorageTestCluster.start({ servers: 4 });
});

after(async () => {
  await cluster.close();
});

const tag = (plan: MovePlan): string => `${plan.volumeId}/${plan.chunkIndex}`;

test("storage balance: a target killed mid-move restarts that chunk only; nothing acknowledged is lost", async () => {
  await cluster.createVolume("vkill", 16 * MiB, 2, CHUNK_BLOCKS);
  const { device } = await cluster.openDevice("vkill");
  const writer = await SkewedWriter.start(cluster.store, device, CHUNK_BLOCKS, { tolerateFailures: true });
  const restarts: MoveRestart[] = [];
  let killed: { serverId: string; chunk: string; restarted: Promise<void> } | undefined;
  const mover = cluster.mover({
    logger: pino({ level: process.env.FLOTILLA_TEST_LOG ?? "silent" }),
    // A small step, so the kill lands between two ranges of one chunk's copy.
    copyStepBlocks: 8,
    onRestart: (restart) => restarts.push(restart),
    afterCopyStep: async (plan) => {
      if (killed !== undefined) return;
      const victim = { serverId: plan.to, chunk: tag(plan), restarted: Promise.resolve() };
      killed = victim;
      await cluster.stopServer(plan.to, "crash");
      // Restarted from a timer, not here: this hook runs inside the move, which must go on meanwhile.
      victim.restarted = cluster.restartLater(plan.to, DOWN_MS);
    },
  });
  const balancer = new StorageBalancer({
    store: cluster.store,
    registry: cluster.registry,
    mover,
    auto: false,
  });
  let ratio = Number.POSITIVE_INFINITY;
  try {
    ({ after: ratio } = await balanceUntilSpread(
      () => currentLoadRatio(cluster.store, cluster.registry),
      balancer,
      { done: () => killed !== undefined },
    ));
  } finally {
    await writer.stop();
    await balancer.close();
  }
  console.log(
    `killed ${killed?.serverId} while copying ${killed?.chunk}; ${restarts.length} restarts: ${describeRestarts(restarts)}; ${balancer.counters.moved} chunks moved, ${balancer.counters.failed} failed; max/mean ${ratio.toFixed(2)}; ${writer.writes} blocks written`,
  );
  assert.ok(killed !== undefined, "a target was killed mid-move");
  await killed.restarted;
  assert.ok(
    restarts.some((r) => tag(r.plan) === killed?.chunk),
    `the copy of ${killed.chunk}, whose target was killed, restarted`,
  );
  for (const restart of restarts) {
    assert.ok(
      restart.plan.from === killed.serverId || restart.plan.to === killed.serverId,
      `${tag(restart.plan)} (${restart.plan.from} -> ${restart.plan.to}) restarted, but its copy did not involve ${killed.serverId}: ${restart.reason}`,
    );
  }
  assert.equal(balancer.counters.failed, 0, "every move finished, the killed one too");
  assert.ok(ratio <= 1.2, `balanced anyway: max/mean ${ratio}`);
  assert.equal(
    writer.failures,
    0,
    "clients saw no failed write (the device retries while a replica restarts)",
  );
  await writer.verify();
  await replicasAgree(device, cluster.registry);
  await device.close();
});

/** "vkill/4 s1->s3 x3 unreachable" per restarted chunk and kind, with the reason of content restarts. */
function describeRestarts(restarts: readonly MoveRestart[]): string {
  const counts = new Map<string, number>();
  for (const r of restarts) {
    const key = `${tag(r.plan)} ${r.plan.from}->${r.plan.to} ${r.kind}${r.kind === "content" ? ` (${r.reason})` : ""}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].map(([key, n]) => `${key} x${n}`).join(", ") || "none";
}
