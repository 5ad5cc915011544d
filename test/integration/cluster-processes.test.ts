/**
 * The cluster as separate processes on a real etcd: three `flotilla node` processes (filers) and two
 * storage servers. Split brain: the owning node is stopped (SIGSTOP) past its lease, the vserver fails
 * over, the old node is continued (SIGCONT): its writes are refused by the storage servers, it stops
 * serving, and nothing written through the new owner is lost or overwritten. Failover: a libnfs
 * client writing FILE_SYNC through kill -9 of the owning node loses no acknowledged write.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { StatusDocument } from "../../src/api/status.ts";
import { decodeRecord, keys, ownerRecordSchema } from "../../src/storage/catalog.ts";
import { StorageError } from "../../src/storage/types.ts";
import { etcdSkipReason } from "../support/etcd-process.ts";
import { failoverRound } from "../support/failover-round.ts";
import { MAIN } from "../support/flotilla-process.ts";
import { NfsTestClient } from "../support/nfs-test-client.ts";
import { ProcessCluster } from "../support/process-cluster.ts";
import { buildLibnfsProgram, run } from "./tools.ts";

const FILE_SYNC = 2;
const LEASE_TTL_MS = 1000;
const NFS_PORT = 20_000 + Math.floor(Math.random() * 20_000);
const PORTS = { nfs: NFS_PORT, mount: NFS_PORT + 1 };
const skip = etcdSkipReason();

let root: string;
let cluster: ProcessCluster;

async function rootVia(vip: string): Promise<{ nfs: NfsTestClient; root: Uint8Array }> {
  const mountd = await NfsTestClient.connect(vip, PORTS.mount);
  const handle = await mountd.mount("/");
  await mountd.close();
  return { nfs: await NfsTestClient.connect(vip, PORTS.nfs), root: handle };
}

/** Keeps trying to reach the vserver on `vip` (a VIP moves, its old holder may still be stopping). */
async function rootViaRetrying(
  vip: string,
  timeoutMs = 30_000,
): Promise<{ nfs: NfsTestClient; root: Uint8Array }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await rootVia(vip);
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

describe("cluster of processes on etcd", { skip, timeout: 240_000 }, () => {
  before(async () => {
    root = await mkdtemp(join(tmpdir(), "flotilla-e2e-"));
    cluster = await ProcessCluster.start({
      root,
      nodes: ["n1", "n2", "n3"],
      storageServers: ["s1", "s2"],
      leaseTtlMs: LEASE_TTL_MS,
    });
  });

  after(async () => {
    await cluster?.close();
    await rm(root, { recursive: true, force: true });
  });

  test("kill -9 of the owning node: the VIPs answer from another node, no acknowledged write is lost", async (t) => {
    const writer = await buildLibnfsProgram(root, "failover-writer");
    const vips = ["127.0.42.1", "127.0.42.2"];
    await cluster.createVserver("failover", vips, PORTS);
    const round = await failoverRound(cluster, {
      writer,
      vserverId: "failover",
      url: `nfs://${vips[0]}/?version=3&nfsport=${PORTS.nfs}&mountport=${PORTS.mount}`,
      file: "/stream",
      seconds: 8,
      killAfterMs: 2500,
      blockBytes: 65536,
    });
    t.diagnostic(
      `killed ${round.killed}, taken over by ${round.takenOverBy}: client stall ${Math.round(round.stallMs)} ms, ${round.acked} blocks acknowledged and verified, ${round.errors} calls failed and were retried`,
    );
    assert.notEqual(round.takenOverBy, round.killed);
    assert.ok(round.acked > 20, `the client wrote before and after the kill (${round.acked} blocks)`);
    assert.equal(round.verified, round.acked, `blocks lost or damaged: ${round.badBlocks.join(", ")}`);
    assert.ok(round.stallMs > 300, `the kill was felt (${round.stallMs} ms)`);
    // Generous: the figure that matters is bench/failover's median, on a quiet machine.
    assert.ok(round.stallMs < 20_000, `the client stalled ${round.stallMs} ms:\n${round.writerOutput}`);
  });

  test("split brain: a stopped owner that comes back is fenced and stops serving", async () => {
    const vips = ["127.0.41.1", "127.0.41.2"];
    await cluster.createVserver("split", vips, PORTS);
    const owner = await cluster.servedBy("split");
    const client = await rootVia(vips[0]!);
    const created = await client.nfs.create(client.root, "ledger");
    assert.equal(created.status, 0);
    const file = created.handle!;
    const before = new Uint8Array(8192).fill(0xaa);
    assert.equal((await client.nfs.write(file, 0, before, FILE_SYNC)).status, 0);

    const oldEpoch = (await cluster.snapshot()).running.get("split")?.ownerEpochs["split-data"];
    assert.ok(oldEpoch !== undefined && oldEpoch > 0);
    cluster.node(owner).signal("SIGSTOP");
    // The master moves the vserver once the stopped node's lease runs out; the new owner takes the
    // volume (fencing the old one) but cannot bind the VIPs yet: the stopped process still holds them.
    const newOwner = await (async () => {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const snapshot = await cluster.snapshot();
        const placed = snapshot.placements.get("split")?.record.node;
        if (placed !== undefined && placed !== null && placed !== owner) return placed;
        if (Date.now() > deadline) throw new Error("the vserver was not moved off the stopped node");
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
    // Wait until the new owner has taken the volume (raised its owner epoch, which fences the old
    // owner at the storage servers) before the old one wakes.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const kv = await cluster.store.get(keys.owner("split-data"));
      const owner = kv === undefined ? undefined : decodeRecord(ownerRecordSchema, kv.key, kv.value);
      // The new owner fences every storage server right after it records the epoch (and they follow
      // the record too); half a second covers that.
      if (owner !== undefined && owner.owner === newOwner && owner.epoch > oldEpoch) {
        await new Promise((resolve) => setTimeout(resolve, 500));
        break;
      }
      if (Date.now() > deadline) throw new Error("the new owner never took the volume");
      await new Promise((resolve) => setTimeout(resolve, 25));
    }

    // A write sent to the stopped node sits in its socket until it wakes up.
    const stale = client.nfs.write(file, 8192, new Uint8Array(8192).fill(0xbb), FILE_SYNC).then(
      (reply) => reply.status,
      () => "connection closed" as const,
    );
    cluster.node(owner).signal("SIGCONT");
    const staleOutcome = await stale;
    assert.notEqual(staleOutcome, 0, "the old owner must not acknowledge a write after it lost the volume");
    await client.nfs.close();

    // The old node lets go of the VIPs; the new owner serves them.
    assert.equal(await cluster.servedBy("split", owner), newOwner);
    const fresh = await rootViaRetrying(vips[1]!);
    const after = new Uint8Array(8192).fill(0xcc);
    assert.equal((await fresh.nfs.write(file, 16384, after, FILE_SYNC)).status, 0);
    const read = await fresh.nfs.read(file, 0, 24576);
    assert.equal(read.status, 0);
    assert.deepEqual(
      read.data?.subarray(0, 8192),
      before,
      "the write acknowledged before the split survived",
    );
    assert.ok(
      read.data?.subarray(8192, 16384).every((byte) => byte === 0),
      "nothing of the old owner's late write reached the volume",
    );
    assert.deepEqual(read.data?.subarray(16384), after, "the new owner's write is intact");
    await fresh.nfs.close();
    // Whatever the old node still had in flight carries its old epoch: every storage server refuses it.
    for (const serverId of ["s1", "s2"]) {
      const storage = cluster.registry.clientFor(serverId);
      assert.ok(storage !== undefined);
      await assert.rejects(
        storage.write({ volumeId: "split-data", chunkIndex: 0 }, oldEpoch, 0, new Uint8Array(4096)),
        (error: unknown) => error instanceof StorageError && error.code === "FENCED",
        `${serverId} refuses the old owner's epoch`,
      );
    }
    const oldLog = cluster.node(owner).output();
    assert.match(oldLog, /membership lease lost|fenced/, "the old node knew it had lost the vserver");
    const snapshot = await cluster.snapshot();
    assert.equal(snapshot.running.get("split")?.nodeId, newOwner, "only the new owner says it serves it");
    // What an operator sees, through any node's admin API.
    const admin = cluster.adminOf(newOwner);
    const status = await run(
      process.execPath,
      [MAIN, "status", "--json", "--api", admin.url, "--token-file", admin.tokenFile],
      {
        timeoutMs: 30_000,
      },
    );
    const split = (JSON.parse(status.stdout) as StatusDocument).vservers.find((v) => v.id === "split");
    assert.equal(split?.state, "running");
    assert.equal(split?.runningOn, newOwner);
  });
});
