/** The cluster verbs refuse bad input with one line saying what is wrong, exit 2, and no stack trace. */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { tempDir } from "../../support/storage-process.ts";
import { runCli } from "./run-cli.ts";

function refused(run: { status: number | null; stderr: string }, message: RegExp): void {
  assert.equal(run.status, 2, run.stderr);
  assert.match(run.stderr, message);
  assert.doesNotMatch(run.stderr, /\n\s+at /, "no stack trace");
}

test("cluster up: bad options are usage errors that say what is allowed", async () => {
  refused(await runCli(["cluster", "up", "--nodes", "99"]), /2 to 16 nodes/);
  refused(await runCli(["cluster", "up", "--nfs-port", "x"]), /not a port/);
  refused(await runCli(["cluster", "up", "--volume-size", "zz"]), /not a size/);
  refused(await runCli(["cluster", "up", "--lease-ttl", "5"]), /100 to 3600000/);
  refused(await runCli(["cluster", "up", "--log-level", "loud"]), /Allowed choices/);
});

test("node: a missing or bad config is refused naming every wrong field", async () => {
  await using dir = await tempDir("flotilla-node-cli-");
  refused(await runCli(["node"]), /give --config FILE/);
  const bad = join(dir.path, "bad.json");
  await writeFile(bad, JSON.stringify({ nodeId: "N1", etcd: ["x"], bogus: 1 }));
  const run = await runCli(["node", "--config", bad]);
  refused(run, /nodeId: 1 to 63/);
  assert.match(run.stderr, /etcd\.0: http:\/\/HOST:PORT/);
  assert.match(run.stderr, /secretFile/);
  assert.match(run.stderr, /bogus/, "unknown fields are named too");
  await writeFile(bad, "{ not json");
  refused(await runCli(["node", "--config", bad]), /bad\.json/);
  refused(await runCli(["node", "--config", join(dir.path, "missing.json")]), /missing\.json/);
});
