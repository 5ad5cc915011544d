import assert from "node:assert/strict";
import { chmod, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { readSecretFile } from "../../../src/storage/secret-file.ts";
import { tempDir } from "../../support/storage-process.ts";
import { linesOf, runCli } from "../cli/run-cli.ts";

test("storage secret: writes 32 random bytes as hex with mode 0600, and refuses to replace a file without --force", async () => {
  await using dir = await tempDir();
  const path = join(dir.path, "secret");
  const made = await runCli(["storage", "secret", "--out", path]);
  assert.equal(made.status, 0, made.stderr);
  assert.equal((await stat(path)).mode & 0o777, 0o600);
  assert.match(await readFile(path, "utf8"), /^[0-9a-f]{64}\n$/);
  assert.equal((await readSecretFile(path)).length, 32);
  const before = await readFile(path, "utf8");
  const again = await runCli(["storage", "secret", "--out", path]);
  assert.equal(again.status, 1);
  assert.match(again.stderr, /exists; pass --force/);
  assert.equal(await readFile(path, "utf8"), before);
  await chmod(path, 0o644);
  const forced = await runCli(["storage", "secret", "--out", path, "--force"]);
  assert.equal(forced.status, 0, forced.stderr);
  assert.notEqual(await readFile(path, "utf8"), before);
  assert.equal((await stat(path)).mode & 0o777, 0o600, "a replaced file is made private too");
});

test("storage serve: bad input is refused with one line saying what is wrong", async () => {
  await using dir = await tempDir();
  const secret = join(dir.path, "secret");
  const loose = join(dir.path, "loose");
  await writeFile(secret, `${"ab".repeat(32)}\n`, { mode: 0o600 });
  await writeFile(loose, `${"ab".repeat(32)}\n`, { mode: 0o644 });
  const serve = (...args: string[]) =>
    runCli(["storage", "serve", "--data", join(dir.path, "data"), ...args]);
  const cases: [string[], number, RegExp][] = [
    [["--id", "S1", "--secret-file", secret], 2, /"S1" is not a server id/],
    [["--id", "s1", "--secret-file", secret, "--port", "70000"], 2, /"70000" is not a port/],
    [["--id", "s1", "--secret-file", secret, "--peer", "s2=nowhere"], 2, /is not ID=HOST:PORT/],
    [["--id", "s1", "--secret-file", secret, "--capacity", "lots"], 2, /not a size/],
    [["--id", "s1", "--secret-file", join(dir.path, "missing")], 1, /secret file .*missing does not exist/],
    [["--id", "s1", "--secret-file", loose], 1, /readable by others \(mode 644\); chmod 600/],
    [["--id", "s1", "--secret-file", secret, "--peer", "s1=127.0.0.1:1"], 1, /names this server itself/],
  ];
  for (const [args, status, message] of cases) {
    const run = await serve(...args);
    assert.equal(run.status, status, `${args.join(" ")}: ${run.stderr}`);
    assert.match(run.stderr, message);
    assert.doesNotMatch(run.stderr, /^\s+at /m, "no stack trace");
    if (status === 1) assert.equal(linesOf(run.stderr).length, 1, run.stderr);
  }
  await writeFile(secret, "not hex\n");
  const notHex = await serve("--id", "s1", "--secret-file", secret);
  assert.match(notHex.stderr, /does not hold hexadecimal digits/);
});

test("storage serve --help explains the verb with an example", async () => {
  const run = await runCli(["storage", "serve", "--help"]);
  assert.equal(run.status, 0);
  for (const expected of [
    "--data",
    "--id",
    "--secret-file",
    "--peer <id=host:port>",
    "--capacity",
    "Example",
  ]) {
    assert.ok(run.stdout.includes(expected), `help mentions ${expected}`);
  }
});
