import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { SeededRandom } from "../../../src/util/random.ts";
import { type CliRun, linesOf, runCli } from "./run-cli.ts";

const dir = await mkdtemp(join(tmpdir(), "flotilla-cli-"));
after(() => rm(dir, { recursive: true, force: true }));

/** One line on stderr starting `<verb>: `, and nothing that looks like a stack frame. */
function assertOneLineFailure(run: CliRun, verb: string, pattern: RegExp): void {
  const lines = linesOf(run.stderr);
  assert.equal(lines.length, 1, `expected one line on stderr, got:\n${run.stderr}`);
  assert.ok(lines[0]?.startsWith(`${verb}: `), `expected "${verb}: ...", got ${lines[0]}`);
  assert.match(run.stderr, pattern);
  assert.doesNotMatch(run.stderr, /^\s+at /m);
}

test("fsck of a missing file exits 8 with one line naming the file", async () => {
  const path = join(dir, "missing.img");
  const run = await runCli(["fsck", path]);
  assert.equal(run.status, 8);
  assertOneLineFailure(run, "fsck", /missing\.img.*no such file/);
});

test("fsck of a file of random bytes exits 8 with one line", async () => {
  const path = join(dir, "random.img");
  await writeFile(path, new SeededRandom(1).bytes(1024 * 1024));
  const run = await runCli(["fsck", path]);
  assert.equal(run.status, 8);
  assertOneLineFailure(run, "fsck", /./);
});

test("fsck of a file that is not whole 4 KiB blocks exits 8 and says why", async () => {
  const path = join(dir, "odd.img");
  await writeFile(path, new Uint8Array(4096 * 3 + 17));
  const run = await runCli(["fsck", path]);
  assert.equal(run.status, 8);
  assertOneLineFailure(run, "fsck", /12305 bytes.*multiple of 4096/);
});

test("fsck of a directory exits 8", async () => {
  const run = await runCli(["fsck", dir]);
  assert.equal(run.status, 8);
  assertOneLineFailure(run, "fsck", /directory/);
});

test("mkfs with a size that is not a size is a usage error that quotes it", async () => {
  const path = join(dir, "bad-size.img");
  const run = await runCli(["mkfs", path, "--size", "10X"]);
  assert.equal(run.status, 2);
  assert.match(run.stderr, /not a size: "10X"/);
  await assert.rejects(stat(path), "no file is made");
});

test("mkfs below the 1 MiB minimum is a usage error", async () => {
  const run = await runCli(["mkfs", join(dir, "small.img"), "--size", "1020K"]);
  assert.equal(run.status, 2);
  assert.match(run.stderr, /below the minimum volume size of 1\.0 MiB/);
});

test("mkfs without --size is a usage error", async () => {
  const run = await runCli(["mkfs", join(dir, "no-size.img")]);
  assert.equal(run.status, 2);
  assert.match(run.stderr, /--size/);
});

test("mkfs refuses to overwrite an existing file without --force and leaves it alone", async () => {
  const path = join(dir, "precious.img");
  await writeFile(path, "precious");
  const run = await runCli(["mkfs", path, "--size", "1M"]);
  assert.equal(run.status, 1);
  assertOneLineFailure(run, "mkfs", /precious\.img already exists; pass --force/);
  assert.equal(await readFile(path, "utf8"), "precious");
});

test("mkfs refuses, even with --force, to replace something that is not a regular file", async () => {
  const path = join(dir, "a-directory");
  await mkdir(path);
  const run = await runCli(["mkfs", path, "--size", "1M", "--force"]);
  assert.equal(run.status, 1);
  assertOneLineFailure(run, "mkfs", /not a regular file/);
  assert.ok((await stat(path)).isDirectory());
});

test("an unknown verb is a usage error", async () => {
  const run = await runCli(["frobnicate"]);
  assert.equal(run.status, 2);
  assert.match(run.stderr, /unknown command 'frobnicate'/);
});

test("every verb's --help says what it does and gives an example", async () => {
  for (const verb of ["mkfs", "fsck", "demo"]) {
    const run = await runCli([verb, "--help"]);
    assert.equal(run.status, 0, verb);
    assert.match(run.stdout, new RegExp(`Usage: flotilla ${verb}`), verb);
    assert.match(run.stdout, /Examples?:\n {2}\S/, verb);
  }
});

test("fsck --help lists the exit statuses", async () => {
  const run = await runCli(["fsck", "--help"]);
  assert.match(run.stdout, /0 clean, 1 problems found and all repaired, 4 problems left/);
  assert.match(run.stdout, /8 the check could not run/);
});
