/**
 * Live moves on a cluster of processes (etcd, two storage servers, three `flotilla node`s), driven
 * as an operator does, by `flotilla vserver move VS --to NODE --live`, under the libnfs failover
 * writer (FILE_SYNC writes, auto-reconnect): every acknowledged write reads back and the client's
 * longest gap is printed; a pinned vserver is refused (exit 4) unless forced; a target killed -9
 * in the middle of the pre-copy rolls the move back and the source goes on serving, nothing lost.
 * The pre-copy is limited to 128 KiB/s here so that the kill lands inside it.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setPinned } from "../../src/cluster/desired-state.ts";
import { etcdSkipReason } from "../support/etcd-process.ts";
import { writerRound } from "../support/failover-round.ts";
import { ProcessCluster } from "../support/process-cluster.ts";
import { until } from "../support/until.ts";
import { vserverMove } from "../support/vserver-move.ts";
import { buildLibnfsProgram } from "./tools.ts";

const NFS_PORT = 20_000 + Math.floor(Math.random() * 20_000);
const PORTS = { nfs: NFS_PORT, mount: NFS_PORT + 1 };
const NODES = ["n1", "n2", "n3"];
const VIPS = ["127.0.51.1", "127.0.51.2"];
const URL = `nfs://${VIPS[0]}/?version=3&nfsport=${PORTS.nfs}&mountport=${PORTS.mount}`;
const skip = etcdSkipReason();

let root: string;
let cluster: ProcessCluster;
let writer: string;

/** `flotilla vserver move lm --to NODE --live` through the serving node's admin API. */
async function liveMove(
  to: string,
  extra: { force?: boolean } = {},
): Promise<{ code: number | null; out: string }> {
  const moved = await vserverMove(cluster, "lm", to, { live: true, ...extra });
  return { code: moved.status, out: moved.out };
}

describe("live moves on a cluster of processes", { skip, timeout: 300_000 }, () => {
  before(async () => {
    root = await mkdtemp(join(tmpdir(), "flotilla-live-e2e-"));
    writer = await buildLibnfsProgram(root, "failover-writer");
    cluster = await ProcessCluster.start({
      root,
      nodes: NODES,
      storageServers: ["s1", "s2"],
      leaseTtlMs: 1000,
      liveMove: { precopyBytesPerSec: 128 * 1024 },
    });
    await cluster.createVserver("lm", VIPS, PORTS);
  });

  after(async () => {
    await cluster?.close();
    await rm(root, { recursive: true, force: true });
  });

  test("a live move under FILE_SYNC writes: every acknowledged write reads back", async (t) => {
    let moveOut = "";
    const round = await writerRound(
      cluster,
      { writer, vserverId: "lm", url: URL, file: "/live", seconds: 8, killAfterMs: 2500, blockBytes: 65536 },
      async (from) => {
        const to = NODES.find((n) => n !== from)!;
        const moved = await liveMove(to);
        moveOut = moved.out;
        assert.equal(moved.code, 0, moved.out);
        return { takenOverBy: await cluster.servedBy("lm", from) };
      },
    );
    t.diagnostic(
      `${moveOut.trim()}; client's longest gap ${Math.round(round.stallMs)} ms, ${round.acked} blocks verified`,
    );
    assert.match(moveOut, /moved vserver lm live to \S+: \d+ pages/);
    const running = (await cluster.snapshot()).running.get("lm");
    assert.equal(running?.liveFrom, round.killed, "the target started from the moved state");
    assert.notEqual(round.takenOverBy, round.killed);
    assert.ok(round.acked > 20, `the client wrote before and after the move (${round.acked} blocks)`);
    assert.equal(round.verified, round.acked, `blocks lost or damaged: ${round.badBlocks.join(", ")}`);
    // Generous for a loaded CI machine; the figure that matters is bench:move's median.
    assert.ok(round.stallMs < 10_000, `the client stalled ${round.stallMs} ms:\n${round.writerOutput}`);
  });

  test("a pinned vserver is refused with exit 4 unless --force", async () => {
    const from = await cluster.servedBy("lm");
    const to = NODES.find((n) => n !== from)!;
    await setPinned(cluster.store, "lm", true);
    const refused = await liveMove(to);
    assert.equal(refused.code, 4, refused.out);
    assert.match(refused.out, /pinned.*--force/);
    assert.equal(await cluster.servedBy("lm"), from);
    const forced = await liveMove(to, { force: true });
    assert.equal(forced.code, 0, forced.out);
    assert.equal(await cluster.servedBy("lm", from), to);
    await setPinned(cluster.store, "lm", false);
  });

  test("the target killed in the middle of the pre-copy: the move rolls back, the source serves on, nothing lost", async (t) => {
    let failure = "";
    const round = await writerRound(
      cluster,
      {
        writer,
        vserverId: "lm",
        url: URL,
        file: "/rollback",
        seconds: 8,
        killAfterMs: 2500,
        blockBytes: 65536,
      },
      async (from) => {
        const to = NODES.find((n) => n !== from)!;
        const moving = liveMove(to);
        await until(
          "the pre-copy to start",
          async () =>
            (await cluster.snapshot()).migrations.get("lm")?.record.state === "copying" ? true : undefined,
          30_000,
          10,
        );
        await cluster.killNode(to);
        const moved = await moving;
        failure = moved.out;
        assert.equal(moved.code, 4, moved.out);
        assert.match(moved.out, /rolled back/);
        return { takenOverBy: from, after: () => cluster.startNode(to).then(() => undefined) };
      },
    );
    t.diagnostic(`${failure.trim()}; client's longest gap ${Math.round(round.stallMs)} ms`);
    assert.equal(await cluster.servedBy("lm"), round.killed, "the source still serves the vserver");
    assert.equal(round.verified, round.acked, `blocks lost or damaged: ${round.badBlocks.join(", ")}`);
    assert.ok(round.acked > 20);
  });
});
