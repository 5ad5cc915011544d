/** `flotilla lab` refuses bad input as usage errors (exit 2), and says it needs root when it is not (exit 1). */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { runCli } from "./run-cli.ts";

const MAIN = fileURLToPath(new URL("../../../src/cli/main.ts", import.meta.url));
/** Who runs the CLI in the root test when the tests run as root. */
const NOBODY = 65_534;

function refused(run: { status: number | null; stderr: string }, message: RegExp): void {
  assert.equal(run.status, 2, run.stderr);
  assert.match(run.stderr, message);
  assert.doesNotMatch(run.stderr, /\n\s+at /, "no stack trace");
}

test("lab: bad tags, counts, ports and subnets are usage errors that say what is allowed", async () => {
  refused(await runCli(["lab", "up", "--tag", "Lab-1"]), /not a lab tag \(1 to 6 of a-z, 0-9\)/);
  refused(await runCli(["lab", "up", "--nodes", "10"]), /not a node count \(1 to 9\)/);
  refused(await runCli(["lab", "up", "--clients", "x"]), /not a client count \(0 to 9\)/);
  refused(
    await runCli(["lab", "fault", "port-down", "n1", "eth9"]),
    /not a node port \(eth0, eth1 or stor0\)/,
  );
  refused(await runCli(["lab", "fault", "subnet-down", "n1", "C"]), /not a client subnet \(A or B\)/);
  refused(await runCli(["lab", "fault", "storage-cut"]), /missing required argument 'node'/);
  refused(await runCli(["lab", "fault", "unplug"]), /unknown command 'unplug'/);
});

test("lab: without root, one line saying the lab needs root, exit 1", () => {
  const asRoot = process.getuid?.() === 0;
  const run = spawnSync(process.execPath, [MAIN, "lab", "status"], {
    encoding: "utf8",
    timeout: 60_000,
    ...(asRoot ? { uid: NOBODY, gid: NOBODY } : {}),
  });
  assert.equal(run.status, 1, run.stderr);
  assert.match(run.stderr, /^lab status: the network lab needs root: .*network namespaces/);
  assert.doesNotMatch(run.stderr, /\n\s+at /, "no stack trace");
});
