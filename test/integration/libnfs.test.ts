// `flotilla serve` used by a real NFS client (libnfs: its tools and two C programs on its API), with
// the traffic of each test captured and checked by tshark's RPC, MOUNT and NFS dissectors.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type NfsServerProcess, startNfsServer } from "../support/nfs-server-process.ts";
import {
  assertToolsPresent,
  buildLibnfsPrograms,
  describeRun,
  integrationSkipReason,
  type LibnfsPrograms,
  type RunResult,
  run,
} from "./tools.ts";
import { assertConformant, startCapture } from "./tshark.ts";

const BIG_FILE_BYTES = 100 * 1024 * 1024;
/** The copy whose traffic tshark checks: large enough for many 1 MiB calls in flight. */
const CAPTURED_FILE_BYTES = 16 * 1024 * 1024;
const LISTED_ENTRY_COUNT = 10_000;
/** Bounds on single client runs: generous for CI, short enough that a hung server fails the test. */
const CLIENT_MS_MAX = 120_000;
const BIG_COPY_MS_MAX = 300_000;
const TEST_MS_MAX = 600_000;
/** The squashed identity when an export names no anonuid/anongid. */
const NOBODY = 65534;

const RW_NO_SQUASH = "127.0.0.0/8(rw,no_root_squash)";

const skip = integrationSkipReason();

/** Fails with the command, its exit and its output unless it exited 0. */
function assertRan(result: RunResult, server?: NfsServerProcess): void {
  if (result.status === 0 && !result.timedOut) return;
  assert.fail(`${describeRun(result)}${server === undefined ? "" : `\n${server.output().slice(-4000)}`}`);
}

/** Fails unless the command failed and its output says `reason` (e.g. an NFS status name). */
function assertRefused(result: RunResult, reason: RegExp): void {
  assert.ok(result.status !== 0 && !result.timedOut, `expected a failure, but:\n${describeRun(result)}`);
  assert.match(
    `${result.stdout}\n${result.stderr}`,
    reason,
    `failed for another reason:\n${describeRun(result)}`,
  );
}

async function sha256(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

async function writeRandomFile(path: string, sizeBytes: number): Promise<void> {
  const file = await open(path, "wx");
  try {
    const chunkBytes = 4 * 1024 * 1024;
    for (let written = 0; written < sizeBytes; written += chunkBytes) {
      await file.write(randomBytes(Math.min(chunkBytes, sizeBytes - written)));
    }
  } finally {
    await file.close();
  }
}

/** The names nfs-ls printed, in its order (each line: mode nlink uid gid size name). */
function listedNames(stdout: string): string[] {
  return stdout
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => {
      const match = /^\S+\s+\d+\s+\d+\s+\d+\s+\d+ (.*)$/.exec(line);
      assert.ok(match !== null, `nfs-ls printed a line that is not an entry: ${JSON.stringify(line)}`);
      return match[1]!;
    });
}

/** `type=reg mode=0644 uid=0 ...` from `nfs-tool stat` as a record. */
function statFields(stdout: string): Record<string, string> {
  return Object.fromEntries(
    stdout
      .trim()
      .split(/\s+/)
      .map((pair) => pair.split("=") as [string, string]),
  );
}

describe("libnfs against flotilla serve", { skip, timeout: TEST_MS_MAX * 4 }, () => {
  let work = "";
  let programs: LibnfsPrograms;
  let captureIndex = 0;

  before(async () => {
    assertToolsPresent();
    work = await mkdtemp(join(tmpdir(), "flotilla-libnfs-"));
    programs = await buildLibnfsPrograms(work);
  });

  after(async () => {
    if (work !== "") await rm(work, { recursive: true, force: true });
  });

  /** Runs `body` with the server's traffic captured, then fails on anything tshark finds wrong. */
  async function captured(
    server: NfsServerProcess,
    expect: { nfs?: boolean; mount?: boolean },
    body: () => Promise<void>,
  ): Promise<void> {
    captureIndex++;
    const file = join(work, `capture-${captureIndex}.pcap`);
    await using capture = await startCapture({
      ports: [server.nfsPort, server.mountPort],
      file,
      host: server.host,
    });
    await body();
    assertConformant(await capture.finish(), expect);
  }

  function tool(server: NfsServerProcess, uid: number, gid: number, ...args: string[]): Promise<RunResult> {
    return run(programs.tool, [server.dirUrl("/"), String(uid), String(gid), ...args], {
      timeoutMs: CLIENT_MS_MAX,
    });
  }

  describe("one read-write server", () => {
    let shared: NfsServerProcess | undefined;
    const server = (): NfsServerProcess => {
      assert.ok(shared !== undefined, "the server did not start");
      return shared;
    };

    before(async () => {
      shared = await startNfsServer({ exports: [RW_NO_SQUASH] });
    });

    after(async () => {
      if (shared === undefined) return;
      try {
        const code = await shared.stop();
        assert.equal(code, 0, `flotilla serve exited ${code} on SIGTERM\n${shared.output()}`);
      } finally {
        await shared[Symbol.asyncDispose]();
      }
    });

    test("every libnfs operation checks out, as root", { timeout: TEST_MS_MAX }, async () => {
      await captured(server(), { nfs: true, mount: true }, async () => {
        const result = await run(programs.ops, [server().dirUrl("/"), "0", "0", "/ops-root"], {
          timeoutMs: CLIENT_MS_MAX,
        });
        assertRan(result, server());
        assert.match(result.stdout, /summary: \d+ checks passed, 0 checks failed/);
      });
    });

    test("every libnfs operation checks out, as an ordinary user", { timeout: TEST_MS_MAX }, async () => {
      assertRan(await tool(server(), 0, 0, "mkdir", "/users", "777"), server());
      await captured(server(), { nfs: true, mount: true }, async () => {
        const args = [server().dirUrl("/"), "1000", "1000", "/users/ops-1000"];
        const result = await run(programs.ops, args, { timeoutMs: CLIENT_MS_MAX });
        assertRan(result, server());
        assert.match(result.stdout, /summary: \d+ checks passed, 0 checks failed/);
      });
    });

    test("nfs-cp copies 100 MiB in and out byte for byte; a captured 16 MiB copy is conformant", {
      timeout: TEST_MS_MAX,
    }, async () => {
      // The 100 MiB copy is not captured: at loopback speed the capture drops packets (and then
      // cannot be judged); a smaller captured copy still has many 1 MiB READs and WRITEs in flight.
      for (const [name, bytes, capture] of [
        ["big", BIG_FILE_BYTES, false],
        ["captured", CAPTURED_FILE_BYTES, true],
      ] as const) {
        const source = join(work, `${name}-source`);
        const back = join(work, `${name}-back`);
        await writeRandomFile(source, bytes);
        const url = server().fileUrl(name, { uid: 0, gid: 0 });
        const copyInAndOut = async (): Promise<void> => {
          assertRan(await run("nfs-cp", [source, url], { timeoutMs: BIG_COPY_MS_MAX }), server());
          assertRan(await run("nfs-cp", [url, back], { timeoutMs: BIG_COPY_MS_MAX }), server());
        };
        if (capture) await captured(server(), { nfs: true, mount: true }, copyInAndOut);
        else await copyInAndOut();
        assert.equal(await sha256(back), await sha256(source), `the ${name} copy that came back differs`);
        const stat = await tool(server(), 0, 0, "stat", `/${name}`);
        assertRan(stat, server());
        assert.equal(statFields(stat.stdout).size, String(bytes));
        await rm(source);
        await rm(back);
      }
    });
  });

  test(`nfs-ls lists ${LISTED_ENTRY_COUNT} entries completely and in a stable order`, {
    timeout: TEST_MS_MAX,
  }, async () => {
    // A server of its own: libnfs mounts the directory a URL names, and this server exports only "/",
    // so the listed directory is the root and holds nothing else.
    await using server = await startNfsServer({ exports: [RW_NO_SQUASH] });
    const made = await run(
      programs.tool,
      [server.dirUrl("/"), "0", "0", "mkfiles", "/", String(LISTED_ENTRY_COUNT)],
      {
        timeoutMs: TEST_MS_MAX / 2,
      },
    );
    assertRan(made, server);
    const expected = Array.from({ length: LISTED_ENTRY_COUNT }, (_, i) => `e${String(i).padStart(5, "0")}`);
    let first: string[] = [];
    await captured(server, { nfs: true, mount: true }, async () => {
      const listing = await run("nfs-ls", [server.dirUrl("/")], { timeoutMs: CLIENT_MS_MAX });
      assertRan(listing, server);
      first = listedNames(listing.stdout);
    });
    const second = await run("nfs-ls", [server.dirUrl("/")], { timeoutMs: CLIENT_MS_MAX });
    assertRan(second, server);

    assert.equal(first.length, LISTED_ENTRY_COUNT, `nfs-ls listed ${first.length} entries`);
    assert.equal(new Set(first).size, first.length, "nfs-ls listed some entries more than once");
    const missing = expected.filter((name) => !first.includes(name));
    assert.deepEqual(missing.slice(0, 10), [], `${missing.length} entries missing from the listing`);
    assert.deepEqual(listedNames(second.stdout), first, "a second listing came in a different order");
    // docs/fs-semantics.md: "Entries come in creation order". libnfs's opendir puts each entry it receives
    // at the head of its list, so nfs-ls prints the server's order reversed.
    assert.deepEqual(first.toReversed(), expected, "the server's READDIRPLUS order is not creation order");
    assert.equal(await server.stop(), 0);
  });

  test("data written and committed survives a restart; SIGTERM and SIGINT exit 0", {
    timeout: TEST_MS_MAX,
  }, async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "flotilla-restart-"));
    try {
      const sizeBytes = String(5 * 1024 * 1024 + 123);
      {
        await using server = await startNfsServer({ dataDir, exports: [RW_NO_SQUASH] });
        await captured(server, { nfs: true, mount: true }, async () => {
          assertRan(await tool(server, 0, 0, "write", "/durable", sizeBytes, "42"), server);
        });
        const code = await server.stop("SIGTERM");
        assert.equal(code, 0, `exit ${code} on SIGTERM\n${server.output()}`);
      }
      {
        await using server = await startNfsServer({ dataDir, exports: [RW_NO_SQUASH] });
        const verified = await tool(server, 1000, 1000, "verify", "/durable", sizeBytes, "42");
        assertRan(verified, server);
        const code = await server.stop("SIGINT");
        assert.equal(code, 0, `exit ${code} on SIGINT\n${server.output()}`);
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  describe("export rules", () => {
    // One volume, served in turn under different rules. It holds /readme (0644, root's) and /pub (0777).
    let dataDir = "";
    const readmeBytes = "4096";

    before(async () => {
      dataDir = await mkdtemp(join(tmpdir(), "flotilla-exports-"));
      await using server = await startNfsServer({ dataDir, exports: [RW_NO_SQUASH] });
      assertRan(await tool(server, 0, 0, "write", "/readme", readmeBytes, "7"), server);
      assertRan(await tool(server, 0, 0, "mkdir", "/pub", "777"), server);
      assert.equal(await server.stop(), 0);
    });

    after(async () => {
      if (dataDir !== "") await rm(dataDir, { recursive: true, force: true });
    });

    test("a ro export serves reads and refuses writes with NFS3ERR_ROFS", {
      timeout: TEST_MS_MAX,
    }, async () => {
      await using server = await startNfsServer({ dataDir, exports: ["127.0.0.0/8(ro,no_root_squash)"] });
      const local = join(work, "ro-source");
      await writeRandomFile(local, 1000);
      await captured(server, { nfs: true, mount: true }, async () => {
        assertRan(await tool(server, 0, 0, "verify", "/readme", readmeBytes, "7"), server);
        const cat = await run("nfs-cat", [server.fileUrl("readme", { uid: 0, gid: 0 })], {
          timeoutMs: CLIENT_MS_MAX,
        });
        assertRan(cat, server);
        assertRefused(
          await run("nfs-cp", [local, server.fileUrl("new", { uid: 0, gid: 0 })], {
            timeoutMs: CLIENT_MS_MAX,
          }),
          /ROFS/,
        );
        assertRefused(await tool(server, 0, 0, "mkdir", "/pub/new-dir", "755"), /ROFS/);
        assertRefused(await tool(server, 0, 0, "write", "/readme", "10", "1"), /ROFS/);
      });
      assertRan(await tool(server, 0, 0, "verify", "/readme", readmeBytes, "7"), server);
      await rm(local);
      assert.equal(await server.stop(), 0);
    });

    test("root_squash makes root act as nobody and leaves other users alone", {
      timeout: TEST_MS_MAX,
    }, async () => {
      await using server = await startNfsServer({ dataDir, exports: ["127.0.0.0/8(rw,root_squash)"] });
      await captured(server, { nfs: true, mount: true }, async () => {
        assertRan(await tool(server, 0, 0, "write", "/pub/by-root", "10", "1"), server);
        assertRan(await tool(server, 1000, 1000, "write", "/pub/by-user", "10", "1"), server);
        // The root directory is root's and 0755: squashed root may not create in it.
        assertRefused(await tool(server, 0, 0, "write", "/denied", "10", "1"), /ACCES/);
      });
      const byRoot = statFields((await tool(server, 0, 0, "stat", "/pub/by-root")).stdout);
      assert.deepEqual(
        [byRoot.uid, byRoot.gid],
        [String(NOBODY), String(NOBODY)],
        "root's file is not nobody's",
      );
      const byUser = statFields((await tool(server, 0, 0, "stat", "/pub/by-user")).stdout);
      assert.deepEqual([byUser.uid, byUser.gid], ["1000", "1000"], "an ordinary user was squashed");
      assert.equal(await server.stop(), 0);
    });

    test("all_squash maps every user to anonuid/anongid", { timeout: TEST_MS_MAX }, async () => {
      await using server = await startNfsServer({
        dataDir,
        exports: ["127.0.0.0/8(rw,all_squash,anonuid=2000,anongid=3000)"],
      });
      await captured(server, { nfs: true, mount: true }, async () => {
        assertRan(await tool(server, 1000, 1000, "write", "/pub/all-1000", "10", "1"), server);
        assertRan(await tool(server, 0, 0, "write", "/pub/all-root", "10", "1"), server);
      });
      for (const name of ["/pub/all-1000", "/pub/all-root"]) {
        const fields = statFields((await tool(server, 0, 0, "stat", name)).stdout);
        assert.deepEqual(
          [fields.uid, fields.gid],
          ["2000", "3000"],
          `${name} is ${fields.uid}:${fields.gid}`,
        );
      }
      assert.equal(await server.stop(), 0);
    });

    test("a client outside every rule is refused at mount", { timeout: TEST_MS_MAX }, async () => {
      await using server = await startNfsServer({ dataDir, exports: ["10.0.0.0/8(rw,no_root_squash)"] });
      await captured(server, { mount: true }, async () => {
        assertRefused(
          await run("nfs-ls", [server.dirUrl("/")], { timeoutMs: CLIENT_MS_MAX }),
          /MNT3ERR_ACCES/,
        );
        assertRefused(await tool(server, 0, 0, "stat", "/readme"), /MNT3ERR_ACCES/);
      });
      assert.equal(await server.stop(), 0);
    });
  });
});
