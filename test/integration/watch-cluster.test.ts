/**
 * Watching a real cluster (`flotilla cluster up` as a process): NFS traffic from libnfs shows up on
 * /metrics; a node killed and an operator's move show up as events with their reasons, through
 * `GET /v1/events`, `flotilla events`, a `flotilla events --follow` that was watching all along
 * (Server-Sent Events), and the failover and move counters on /metrics.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { StatusDocument } from "../../src/api/status.ts";
import { type EventRecord, eventRecordSchema } from "../../src/cluster/event-record.ts";
import { spawnClusterUp } from "../support/cluster-up-process.ts";
import { type FlotillaProcess, MAIN, spawnFlotilla } from "../support/flotilla-process.ts";
import { describeRun, integrationSkipReason, run } from "./tools.ts";

const NFS_PORT = 20_000 + Math.floor(Math.random() * 20_000);
const MOUNT_PORT = NFS_PORT + 1;
const ADMIN_PORT = NFS_PORT + 2;
const API = `http://127.0.0.1:${ADMIN_PORT}`;
const FILE_BYTES = 300_000;
const skip = integrationSkipReason(["nfs-ls", "nfs-cp"]);

let dir: string;
let cluster: FlotillaProcess | undefined;

const tokenFile = (): string => join(dir, "data", "admin-token");
const apiArgs = (): string[] => ["--api", API, "--token-file", tokenFile()];

function flotilla(...args: string[]) {
  return run(process.execPath, [MAIN, ...args, ...apiArgs()], { timeoutMs: 30_000 });
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function status(): Promise<StatusDocument | undefined> {
  const result = await flotilla("status", "--json");
  return result.status === 0 ? (JSON.parse(result.stdout) as StatusDocument) : undefined;
}

async function metrics(token: string): Promise<string> {
  const response = await fetch(`${API}/metrics`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  return response.text();
}

function sample(text: string, name: string, labels: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${name}{${labels}} `));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(" ") + 1));
}

function parseLines(text: string): EventRecord[] {
  return text
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => eventRecordSchema.parse(JSON.parse(line)));
}

describe("watching a cluster: metrics and events", { skip, timeout: 240_000 }, () => {
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "flotilla-watch-"));
    cluster = await spawnClusterUp(join(dir, "data"), {
      nfsPort: NFS_PORT,
      mountPort: MOUNT_PORT,
      adminPort: ADMIN_PORT,
    });
  });
  after(async () => {
    if (cluster !== undefined) assert.equal(await cluster.stop("SIGINT"), 0, cluster.output());
    await rm(dir, { recursive: true, force: true });
  });

  test("NFS traffic on /metrics; a failover and a move as events, live and on /metrics", async () => {
    const token = (await readFile(tokenFile(), "utf8")).trim();
    const url = `nfs://127.0.1.1/?version=3&nfsport=${NFS_PORT}&mountport=${MOUNT_PORT}&auto-traverse-mounts=0`;
    const local = join(dir, "payload");
    await run("sh", ["-c", `head -c ${FILE_BYTES} /dev/urandom > ${local}`], { timeoutMs: 10_000 });
    const first = await until("every vserver running", async () => {
      const s = await status();
      return s?.vservers.every((v) => v.state === "running") === true ? s : undefined;
    });

    // Watching from before anything happens, as an operator would.
    await using follower = await spawnFlotilla(
      ["events", "--follow", "--json", ...apiArgs()],
      /"kind":"place"/,
      "flotilla events --follow",
    );

    const unauthorized = await fetch(`${API}/metrics`);
    assert.equal(unauthorized.status, 401, "/metrics needs the bearer token too");

    const copied = await run("nfs-cp", [local, url.replace("/?", "/payload?")], { timeoutMs: 30_000 });
    assert.equal(copied.status, 0, describeRun(copied));
    const listed = await run("nfs-ls", [url], { timeoutMs: 30_000 });
    assert.match(listed.stdout, /payload/, describeRun(listed));

    const traffic = await metrics(token);
    assert.ok(sample(traffic, "flotilla_nfs_calls_total", 'vserver="vs1",procedure="WRITE"') >= 1, traffic);
    assert.ok(sample(traffic, "flotilla_nfs_calls_total", 'vserver="vs1",procedure="READDIRPLUS"') >= 1);
    assert.ok(sample(traffic, "flotilla_nfs_calls_total", 'vserver="vs1",procedure="MOUNT.MNT"') >= 2);
    assert.equal(sample(traffic, "flotilla_nfs_calls_total", 'vserver="vs2",procedure="WRITE"'), 0);
    assert.ok(sample(traffic, "flotilla_nfs_received_bytes_total", 'vserver="vs1"') >= FILE_BYTES);
    assert.ok(sample(traffic, "flotilla_nfs_call_duration_seconds_count", 'procedure="WRITE"') >= 1);
    assert.ok(
      sample(traffic, "flotilla_nfs_call_duration_seconds_bucket", 'le="+Inf",procedure="WRITE"') >= 1,
    );
    for (const server of ["n1", "n2", "n3"])
      assert.match(traffic, new RegExp(`^flotilla_storage_capacity_bytes\\{server="${server}"\\} \\d+`, "m"));
    assert.match(traffic, /^flotilla_store_up 1$/m);

    // A crash of vs1's node: the master fails vs1 over and says why.
    const victim = first.vservers.find((v) => v.id === "vs1")?.node;
    assert.ok(victim !== null && victim !== undefined);
    const killed = await flotilla("fault", "kill-node", victim);
    assert.equal(killed.status, 0, describeRun(killed));
    const failover = await until("the failover event", async () => {
      const response = await fetch(`${API}/v1/events?since=0&limit=1000`, {
        headers: { authorization: `Bearer ${token}` },
      });
      const page = (await response.json()) as { events: unknown[]; lastSeq: number };
      return page.events
        .map((e) => eventRecordSchema.parse(e))
        .find((e) => e.kind === "failover" && e.subject === "vs1");
    });
    assert.equal(failover.cause, "node-dead");
    assert.match(failover.reason, new RegExp(`node ${victim} lost its lease; it goes to n\\d`));
    assert.equal(failover.details.from, victim);
    assert.notEqual(failover.by, victim, "decided by the master that took over or stayed");

    // The operator's verb shows it as a line: time, kind, subject, reason.
    const listedEvents = await flotilla("events", "--kind", "failover");
    assert.equal(listedEvents.status, 0, describeRun(listedEvents));
    assert.match(
      listedEvents.stdout,
      new RegExp(
        `^\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\.\\d{3} {2}failover +vs1 +node ${victim} lost its lease`,
        "m",
      ),
    );
    assert.doesNotMatch(listedEvents.stdout, /place/, "--kind filters");

    // An operator's move of vs2 to a node other than its own.
    const now = await until("vs1 running again", async () => {
      const s = await status();
      return s?.vservers.find((v) => v.id === "vs1")?.runningOn !== victim ? s : undefined;
    });
    const vs2 = now.vservers.find((v) => v.id === "vs2");
    const target = now.nodes.find((n) => n.alive && n.id !== vs2?.node)?.id;
    assert.ok(target !== undefined);
    const moved = await flotilla("vserver", "move", "vs2", target);
    assert.equal(moved.status, 0, describeRun(moved));

    // The follower saw both live, in order, each once.
    const seen = await until("the follower to see the failover and the move", async () => {
      const events = parseLines(follower.output());
      const move = events.find((e) => e.kind === "move" && e.subject === "vs2");
      return move === undefined ? undefined : events;
    });
    const seqs = seen.map((e) => e.seq);
    assert.deepEqual(
      seqs,
      [...new Set(seqs)].sort((a, b) => a - b),
      "in order, none twice",
    );
    assert.ok(seen.some((e) => e.seq === failover.seq));
    const move = seen.find((e) => e.kind === "move" && e.subject === "vs2");
    assert.equal(move?.cause, "operator");
    assert.match(move?.reason ?? "", new RegExp(`moved it to ${target}`));
    assert.equal(await follower.stop("SIGINT"), 0, follower.output());

    const counted = await metrics(token);
    assert.ok(sample(counted, "flotilla_failovers_total", 'cause="node-dead"') >= 1, counted);
    assert.equal(sample(counted, "flotilla_vserver_moves_total", 'cause="operator"'), 1);
    assert.ok(sample(counted, "flotilla_events_total", 'kind="failover",cause="node-dead"') >= 1);
    assert.ok(sample(counted, "flotilla_nfs_calls_total", 'vserver="vs1",procedure="WRITE"') >= 1);
  });
});
