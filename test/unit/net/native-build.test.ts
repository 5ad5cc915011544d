import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { chmod, mkdir, mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { after, test } from "node:test";
import { promisify } from "node:util";
import { NativeBuildError, nativeProgram } from "../../../src/net/native-build.ts";
import { onPath } from "../../integration/tools.ts";

const root = await mkdtemp(join(tmpdir(), "flotilla-native-test-"));
after(() => rm(root, { recursive: true, force: true }));
const run = promisify(execFile);

test("a helper is built once, under its source's hash, and runs", {
  skip: !onPath("gcc") && "no gcc",
}, async () => {
  const dir = join(root, "cache");
  const program = await nativeProgram("tickle-ack", "the test", dir);
  assert.match(basename(program), /^tickle-ack-[0-9a-f]{16}$/);
  const builtAt = (await stat(program)).mtimeMs;
  assert.equal(await nativeProgram("tickle-ack", "the test", dir), program);
  assert.equal((await stat(program)).mtimeMs, builtAt, "not built again");
  // Usage errors exit 2 before any socket is opened, so this sends nothing.
  await assert.rejects(run(program, ["3", "10.0.0.1:1"]), (error: { code?: number; stderr?: string }) => {
    assert.equal(error.code, 2);
    assert.match(error.stderr ?? "", /usage: .* ROUNDS/);
    return true;
  });
});

test("without gcc the error says what to install", async () => {
  const saved = process.env.PATH;
  process.env.PATH = join(root, "empty");
  try {
    await assert.rejects(
      nativeProgram("tickle-ack", "the Linux VIP driver's tickle ACKs", join(root, "nogcc")),
      (error: unknown) =>
        error instanceof NativeBuildError &&
        /gcc is not installed \(the Linux VIP driver's tickle ACKs need gcc and libc6-dev\)/.test(
          error.message,
        ),
    );
  } finally {
    process.env.PATH = saved;
  }
});

test("a cache directory others may write to is refused: its programs would run as root", async () => {
  const dir = join(root, "open");
  await mkdir(dir);
  await chmod(dir, 0o777);
  await assert.rejects(nativeProgram("tickle-ack", "the test", dir), /not a private directory/);
});
