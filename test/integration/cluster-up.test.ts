/**
 * `flotilla cluster up` (what `npm start` runs) as an operator uses it: it prints libnfs URLs that
 * work; `flotilla status` says all is running; `fault kill-node` of a vserver's node and the vserver
 * runs elsewhere with its file; Ctrl-C stops cleanly (exit 0); a second start finds the file.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { StatusDocument } from "../../src/api/status.ts";
import { spawnClusterUp } from "../support/cluster-up-process.ts";
import { type FlotillaProcess, MAIN } from "../support/flotilla-process.ts";
import { describeRun, integrationSkipReason, run } from "./tools.ts";

const NFS_PORT = 20_000 + Math.floor(Math.random() * 20_000);
const MOUNT_PORT = NFS_PORT + 1;
const ADMIN_PORT = NFS_PORT + 2;
const skip = integrationSkipReason(["nfs-ls", "nfs-cp"]);

let dir: string;

function up(): Promise<FlotillaProcess> {
  return spawnClusterUp(join(dir, "data"), {
    nfsPort: NFS_PORT,
    mountPort: MOUNT_PORT,
    adminPort: ADMIN_PORT,
  });
}

function flotilla(...args: string[]) {
  return run(
    process.execPath,
    [
      MAIN,
      ...args,
      "--api",
      `http://127.0.0.1:${ADMIN_PORT}`,
      "--token-file",
      join(dir, "data", "admin-token"),
    ],
    { timeoutMs: 30_000 },
  );
}

async function statusWhenRunning(timeoutMs = 30_000): Promise<StatusDocument> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const result = await flotilla("status", "--json");
    if (result.status === 0) return JSON.parse(result.stdout) as StatusDocument;
    if (Date.now() > deadline) throw new Error(`the cluster did not settle:\n${describeRun(result)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

describe("flotilla cluster up", { skip, timeout: 180_000 }, () => {
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "flotilla-up-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test("URLs that work, status, a node killed, Ctrl-C, and a restart that finds the data", async () => {
    const url = `nfs://127.0.1.1/?version=3&nfsport=${NFS_PORT}&mountport=${MOUNT_PORT}&auto-traverse-mounts=0`;
    // As a user would: the printed URL with a file name after the host (MOUNT of the empty path).
    const fileUrl = url.replace("/?", "/kept?");
    const local = join(dir, "kept");
    const back = join(dir, "back");
    await run("sh", ["-c", `head -c 300000 /dev/urandom > ${local}`], { timeoutMs: 10_000 });

    const first = await up();
    try {
      assert.match(first.output(), new RegExp(`vs1 {2}on n\\d {2}${url.replace(/[?.&]/g, "\\$&")}`));
      const copied = await run("nfs-cp", [local, fileUrl], { timeoutMs: 30_000 });
      assert.equal(copied.status, 0, describeRun(copied));
      const status = await statusWhenRunning();
      assert.deepEqual(
        status.vservers.map((v) => [v.id, v.state]),
        [
          ["vs1", "running"],
          ["vs2", "running"],
        ],
      );
      const node = status.vservers.find((v) => v.id === "vs1")?.node;
      assert.ok(node !== null && node !== undefined);
      const killed = await flotilla("fault", "kill-node", node);
      assert.equal(killed.status, 0, describeRun(killed));
      // Until the lease runs out status may still say running on the old node: wait for the move.
      const deadline = Date.now() + 30_000;
      for (;;) {
        const now = await statusWhenRunning();
        const vs1 = now.vservers.find((v) => v.id === "vs1");
        if (vs1?.runningOn !== node && vs1?.state === "running") break;
        if (Date.now() > deadline) throw new Error("vs1 did not move off the killed node");
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      const listed = await run("nfs-ls", [url], { timeoutMs: 30_000 });
      assert.match(listed.stdout, /kept/, describeRun(listed));
    } finally {
      assert.equal(await first.stop("SIGINT"), 0, first.output());
    }
    assert.match(first.output(), /^stopped$/m);

    const second = await up();
    try {
      await statusWhenRunning();
      const read = await run("nfs-cp", [fileUrl, back], { timeoutMs: 30_000 });
      assert.equal(read.status, 0, describeRun(read));
      const same = await run("cmp", [local, back], { timeoutMs: 10_000 });
      assert.equal(same.status, 0, "the file written before the kill and the restart reads back the same");
    } finally {
      assert.equal(await second.stop("SIGINT"), 0, second.output());
    }
  });
});
