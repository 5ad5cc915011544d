/**
 * A balancer's move whose target is killed mid-copy (a crash: it stops answering, its in-memory
 * filling state is gone) and restarted: that chunk's copy restarts and finishes; moves not touching
 * the killed server go on without a restart; every acknowledged write reads back and replicas agree.
 */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { after, before, test } from "node:test";
import { pino } from "pino";
import { currentLoadRatio, StorageBalancer } from "../../src/storage/balancer.ts";
import type { MovePlan } from "../../src/storage/chunk-mover.ts";
import { balanceUntilSpread, SkewedWriter } from "../support/skewed-writer.ts";
import { StorageTestCluster } from "../support/storage-cluster.ts";
import { replicasAgree } from "../support/write-load.ts";

const MiB = 1024 * 1024;
const CHUNK_BLOCKS = 64;
let cluster: StorageTestCluster;

before(async () => {
  cluster = await StorageTestCluster.start({ servers: 4 });
});

after(async () => {
  await cluster.close();
});

/** The chunk moves the mover logged as restarted, by "volume/chunk". */
function restartLog(): { logger: pino.Logger; restarted: Set<string> } {
  const restarted = new Set<string>();
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString("utf8").split("\n")) {
        if (!line.includes("restarting the chunk's copy")) continue;
        const entry = JSON.parse(line) as { volumeId: string; chunkIndex: number };
        restarted.add(`${entry.volumeId}/${entry.chunkIndex}`);
      }
      done();
    },
  });
  return { logger: pino({ level: "info" }, sink), restarted };
}

test("storage balance: a target killed mid-move restarts that chunk's copy only; nothing acknowledged is lost", async () => {
  await cluster.createVolume("vkill", 16 * MiB, 2, CHUNK_BLOCKS);
  const { device } = await cluster.openDevice("vkill");
  const writer = await SkewedWriter.start(cluster.store, device, CHUNK_BLOCKS, { tolerateFailures: true });
  const hotServer = writer.hotServer;

  const { logger, restarted } = restartLog();
  const inFlight = new Map<string, MovePlan>();
  const tag = (plan: MovePlan): string => `${plan.volumeId}/${plan.chunkIndex}`;
  let killed: { serverId: string; touching: Set<string> } | undefined;
  const mover = cluster.mover({
    logger,
    // A small step, so the kill lands between two ranges of one chunk's copy.
    copyStepBlocks: 8,
    afterCopyStep: async (plan, blockOffset) => {
      if (killed !== undefined || blockOffset === 0 || plan.to === hotServer) return;
      // The moves touching the victim at the moment it dies are the only ones allowed to restart.
      const touching = new Set(
        [...inFlight.values()].filter((p) => p.to === plan.to || p.from === plan.to).map(tag),
      );
      killed = { serverId: plan.to, touching };
      await cluster.stopServer(plan.to, "crash");
      await new Promise((resolve) => setTimeout(resolve, 300));
      await cluster.restartServer(plan.to);
    },
  });
  const balancer = new StorageBalancer({
    store: cluster.store,
    registry: cluster.registry,
    mover,
    auto: false,
    logger,
  });
  const moved = new Set<string>();
  const originalMove = mover.move.bind(mover);
  // Which moves are under way when the target dies: the balancer calls the mover's move.
  mover.move = async (plan) => {
    inFlight.set(tag(plan), plan);
    try {
      await originalMove(plan);
      moved.add(tag(plan));
    } finally {
      inFlight.delete(tag(plan));
    }
  };
  try {
    const { after: ratio } = await balanceUntilSpread(
      () => currentLoadRatio(cluster.store, cluster.registry),
      balancer,
      { done: () => killed !== undefined },
    );
    console.log(
      `killed ${killed?.serverId} mid-copy; restarted copies: ${[...restarted].join(", ")}; moves touching it then: ${[...(killed?.touching ?? [])].join(", ")}; ${moved.size} chunks moved, ${balancer.counters.failed} failed; max/mean ${ratio.toFixed(2)}`,
    );
    assert.ok(killed !== undefined, "a target was killed mid-move");
    assert.ok(restarted.size >= 1, "the killed target's chunk restarted its copy");
    for (const chunk of restarted)
      assert.ok(killed.touching.has(chunk), `${chunk} restarted but did not touch ${killed.serverId}`);
    assert.ok(ratio <= 1.2, `balanced anyway: ${ratio}`);
  } finally {
    await writer.stop();
    await balancer.close();
  }
  assert.equal(
    writer.failures,
    0,
    "clients saw no failed write (the device retries while a replica restarts)",
  );
  await writer.verify();
  await replicasAgree(device, cluster.registry);
  await device.close();
});
