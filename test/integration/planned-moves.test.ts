/**
 * Lossless moves, on a cluster of processes (three `flotilla node` filers, two storage servers, real
 * etcd) with libnfs as the client. A planned move right after each kind of namespace operation and
 * after a FILE_SYNC write, 50 times: every acknowledged operation is there after the move (and after
 * every later move), the old owner logs a clean handover and the new one no forced takeover. Then
 * kill -9 of the owning node right after CREATE, MKDIR and RENAME replies: the entries exist after
 * the failover.
 *
 * FLOTILLA_MOVES sets the number of moves (default 50).
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { moveVserver } from "../../src/cluster/desired-state.ts";
import { etcdSkipReason } from "../support/etcd-process.ts";
import { ProcessCluster } from "../support/process-cluster.ts";
import { buildLibnfsProgram, describeRun, run } from "./tools.ts";

const LEASE_TTL_MS = 1000;
const NFS_PORT = 20_000 + Math.floor(Math.random() * 20_000);
const PORTS = { nfs: NFS_PORT, mount: NFS_PORT + 1 };
const VIPS = ["127.0.43.1", "127.0.43.2"];
const URL = `nfs://${VIPS[0]}/?version=3&nfsport=${PORTS.nfs}&mountport=${PORTS.mount}&auto-traverse-mounts=0`;
const NODES = ["n1", "n2", "n3"];
const VSERVER = "mover";
const MOVES = Number(process.env.FLOTILLA_MOVES ?? 50);
const SYNC_WRITE_BYTES = 200_000;
const skip = etcdSkipReason();

let root: string;
let cluster: ProcessCluster;
let tool: string;

/** One step of nfs-tool as root through the vserver's first VIP; fails the test on a non-zero exit. */
async function nfsTool(...args: string[]): Promise<string> {
  const result = await run(tool, [URL, "0", "0", ...args], { timeoutMs: 60_000 });
  assert.equal(result.status, 0, `nfs-tool ${args.join(" ")}\n${describeRun(result)}`);
  return result.stdout;
}

/** An acknowledged change, and how to check that it is still there. */
interface Change {
  readonly what: string;
  /** The operation whose reply the move follows at once; `setup` runs (and is acknowledged) before it. */
  readonly setup?: () => Promise<unknown>;
  readonly act: () => Promise<unknown>;
  readonly check: () => Promise<void>;
}

async function statMatches(path: string, pattern: RegExp): Promise<void> {
  const out = await nfsTool("lstat", path);
  assert.match(out, pattern, `stat ${path}`);
}

/** The i-th change: the kinds of namespace operation and a FILE_SYNC write, in turn. */
function changeFor(i: number): Change {
  const kinds: Array<() => Change> = [
    () => ({
      what: "CREATE",
      act: () => nfsTool("create", `/c${i}`),
      check: () => statMatches(`/c${i}`, /type=reg/),
    }),
    () => ({
      what: "MKDIR+SETATTR",
      act: () => nfsTool("mkdir", `/d${i}`, "750"),
      check: () => statMatches(`/d${i}`, /type=dir mode=0750/),
    }),
    () => ({
      what: "RENAME",
      setup: () => nfsTool("create", `/r${i}`),
      act: () => nfsTool("rename", `/r${i}`, `/r${i}-renamed`),
      check: async () => {
        await statMatches(`/r${i}-renamed`, /type=reg/);
        await nfsTool("absent", `/r${i}`);
      },
    }),
    () => ({
      what: "REMOVE",
      setup: () => nfsTool("create", `/x${i}`),
      act: () => nfsTool("remove", `/x${i}`),
      check: async () => {
        await nfsTool("absent", `/x${i}`);
      },
    }),
    () => ({
      what: "SYMLINK",
      act: () => nfsTool("symlink", `target-${i}`, `/l${i}`),
      check: () => statMatches(`/l${i}`, /type=lnk/),
    }),
    () => ({
      what: "LINK",
      setup: () => nfsTool("create", `/k${i}`),
      act: () => nfsTool("link", `/k${i}`, `/k${i}-link`),
      check: () => statMatches(`/k${i}-link`, /type=reg .*nlink=2/),
    }),
    () => ({
      what: "SETATTR",
      setup: () => nfsTool("create", `/m${i}`),
      act: () => nfsTool("chmod", `/m${i}`, "600"),
      check: () => statMatches(`/m${i}`, /type=reg mode=0600/),
    }),
    () => ({
      what: "WRITE FILE_SYNC",
      act: () => nfsTool("syncwrite", `/w${i}`, String(SYNC_WRITE_BYTES), String(i)),
      check: async () => {
        await nfsTool("verify", `/w${i}`, String(SYNC_WRITE_BYTES), String(i));
      },
    }),
    () => ({
      what: "RMDIR",
      setup: () => nfsTool("mkdir", `/e${i}`, "755"),
      act: () => nfsTool("rmdir", `/e${i}`),
      check: async () => {
        await nfsTool("absent", `/e${i}`);
      },
    }),
  ];
  return kinds[i % kinds.length]!();
}

async function placementGeneration(): Promise<number> {
  const placement = (await cluster.snapshot()).placements.get(VSERVER)?.record;
  assert.ok(placement !== undefined, "the vserver has a placement");
  return placement.generation;
}

/** A log line of `node` about the vserver at `generation` with message `message`, if there is one. */
function logLine(node: string, generation: number, message: string): string | undefined {
  const lines = cluster.node(node).output().split("\n");
  return lines.find(
    (line) =>
      line.includes(`"vserverId":"${VSERVER}"`) &&
      line.includes(`"generation":${generation},`) &&
      line.includes(`"msg":"${message}`),
  );
}

async function untilLogLine(node: string, generation: number, message: string): Promise<string> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const line = logLine(node, generation, message);
    if (line !== undefined) return line;
    if (Date.now() > deadline)
      throw new Error(
        `node ${node} logged no "${message}" for generation ${generation}:\n${cluster.node(node).output().slice(-3000)}`,
      );
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe("lossless moves on a cluster of processes", { skip, timeout: 600_000 }, () => {
  before(async () => {
    root = await mkdtemp(join(tmpdir(), "flotilla-moves-"));
    tool = await buildLibnfsProgram(root, "nfs-tool");
    cluster = await ProcessCluster.start({
      root,
      nodes: NODES,
      storageServers: ["s1", "s2"],
      leaseTtlMs: LEASE_TTL_MS,
    });
    await cluster.createVserver(VSERVER, VIPS, PORTS);
  });

  after(async () => {
    await cluster?.close();
    await rm(root, { recursive: true, force: true });
  });

  test(`${MOVES} planned moves, each right after an acknowledged operation: nothing lost, every one handed over`, async () => {
    const done: Change[] = [];
    const stalls: number[] = [];
    let owner = await cluster.servedBy(VSERVER);
    for (let i = 0; i < MOVES; i++) {
      const change = changeFor(i);
      await change.setup?.();
      await change.act();
      // At once after the reply: before the next transaction group would have committed it.
      const target = NODES[(NODES.indexOf(owner) + 1) % NODES.length]!;
      const generation = await placementGeneration();
      const movedAt = Date.now();
      await moveVserver(cluster.store, VSERVER, target);
      const now = await cluster.servedBy(VSERVER, owner);
      stalls.push(Date.now() - movedAt);
      assert.equal(now, target, `move ${i} (after ${change.what}) went to ${target}`);
      await untilLogLine(owner, generation, "handed over");
      const started = await untilLogLine(target, generation + 1, "vserver started");
      assert.match(
        started,
        /"forced":false/,
        `move ${i}: the new owner did not force its way in: ${started}`,
      );
      assert.match(started, new RegExp(`"handoverFrom":("${owner}"|null)`), started);
      await change.check();
      done.push(change);
      owner = target;
    }
    // Every change survived every later move too.
    for (const change of done) await change.check();
    for (const node of NODES)
      assert.doesNotMatch(cluster.node(node).output(), /forced takeover/, `node ${node} forced a takeover`);
    const sorted = [...stalls].sort((a, b) => a - b);
    console.log(
      `${MOVES} moves: time from move to serving on the new node min ${sorted[0]} ms, median ${sorted[Math.floor(sorted.length / 2)]} ms, max ${sorted.at(-1)} ms`,
    );
  });

  test("kill -9 of the owner right after CREATE, MKDIR and RENAME replies: the entries exist after failover", async () => {
    const steps: Array<{ what: string; act: () => Promise<unknown>; check: () => Promise<void> }> = [
      {
        what: "CREATE",
        act: () => nfsTool("create", "/killed-create"),
        check: () => statMatches("/killed-create", /type=reg/),
      },
      {
        what: "MKDIR",
        act: () => nfsTool("mkdir", "/killed-mkdir", "700"),
        check: () => statMatches("/killed-mkdir", /type=dir mode=0700/),
      },
      {
        what: "RENAME",
        act: async () => {
          await nfsTool("create", "/killed-rename-from");
          await nfsTool("rename", "/killed-rename-from", "/killed-rename-to");
        },
        check: async () => {
          await statMatches("/killed-rename-to", /type=reg/);
          await nfsTool("absent", "/killed-rename-from");
        },
      },
    ];
    for (const step of steps) {
      const owner = await cluster.servedBy(VSERVER);
      await step.act();
      await cluster.killNode(owner);
      await cluster.servedBy(VSERVER, owner);
      await step.check();
      await cluster.startNode(owner);
    }
  });
});
