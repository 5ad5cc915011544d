import assert from "node:assert/strict";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { runCli } from "./run-cli.ts";

// These need the working file system: mkfs, mount and fsck from src/fs.

const dir = await mkdtemp(join(tmpdir(), "flotilla-cli-fs-"));
after(() => rm(dir, { recursive: true, force: true }));

test("mkfs makes a sparse volume, rounded down to whole blocks, that fsck finds clean", async () => {
  const path = join(dir, "vol.img");
  const made = await runCli(["mkfs", path, "--size", "65537K"]);
  assert.equal(made.status, 0, made.stderr);
  assert.match(made.stdout, /made a Flotilla volume in .*vol\.img: 64\.0 MiB, 16384 blocks of 4\.0 KiB/);
  assert.equal((await stat(path)).size, 64 * 1024 * 1024);

  const checked = await runCli(["fsck", path]);
  assert.equal(checked.status, 0, checked.stdout + checked.stderr);
  assert.match(checked.stdout, /checked .*vol\.img at txg \d+: \d+ tree blocks, \d+ data blocks, \d+ inodes/);
  assert.match(checked.stdout, /clean: no problems found/);
});

test("mkfs --force replaces an existing file with a fresh volume", async () => {
  const path = join(dir, "replace.img");
  await writeFile(path, "old contents");
  const made = await runCli(["mkfs", path, "--size", "3M", "--force"]);
  assert.equal(made.status, 0, made.stderr);
  assert.equal((await stat(path)).size, 3 * 1024 * 1024);
  assert.equal((await runCli(["fsck", path])).status, 0);
});

test("fsck --repair of a clean volume exits 0", async () => {
  const path = join(dir, "repair.img");
  assert.equal((await runCli(["mkfs", path, "--size", "4M"])).status, 0);
  const checked = await runCli(["fsck", path, "--repair"]);
  assert.equal(checked.status, 0, checked.stdout + checked.stderr);
});

test("fsck of a zeroed file of the right size says it is not a Flotilla volume and exits 8", async () => {
  const path = join(dir, "zeros.img");
  await writeFile(path, new Uint8Array(1024 * 1024));
  const checked = await runCli(["fsck", path]);
  assert.equal(checked.status, 8);
  assert.match(checked.stderr, /^fsck: .*zeros\.img: not a Flotilla volume/);
});

test("demo runs end to end on a file it is given and fsck then finds it clean", async () => {
  const path = join(dir, "demo.img");
  const run = await runCli(["demo", "--file", path]);
  assert.equal(run.status, 0, run.stdout + run.stderr);
  assert.match(run.stdout, /read back \/projects\/hello\.txt: .*same as written/);
  assert.match(run.stdout, /clean: no problems found/);
  assert.match(run.stdout, new RegExp(`npm run flotilla -- fsck ${path}`));
  assert.equal((await runCli(["fsck", path])).status, 0);
});
