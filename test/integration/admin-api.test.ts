/**
 * The admin API over real HTTP on loopback, on a real storage tier (two servers), and the `flotilla`
 * admin verbs against it: the token, every kind of refusal with its status and exit code, and the
 * changes showing up in the status document.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { pino } from "pino";
import { AdminServer } from "../../src/api/admin-server.ts";
import type { StatusDocument } from "../../src/api/status.ts";
import {
  clusterKeys,
  connectionsRecordSchema,
  encodeRecord,
  nodeSettingsSchema,
} from "../../src/cluster/catalog.ts";
import { MAIN } from "../support/flotilla-process.ts";
import { StorageTestCluster } from "../support/storage-cluster.ts";
import { run } from "./tools.ts";

const silent = pino({ level: "silent" });
let dir: string;
let tier: StorageTestCluster;
let api: AdminServer;
const killed: string[] = [];

async function request(
  method: string,
  path: string,
  body?: unknown,
  token = api.token,
): Promise<{ status: number; json: unknown }> {
  const response = await fetch(`${api.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
  });
  return { status: response.status, json: await response.json() };
}

async function status(): Promise<StatusDocument> {
  const { status: code, json } = await request("GET", "/v1/status");
  assert.equal(code, 200);
  return json as StatusDocument;
}

function errorMessage(json: unknown): string {
  return (json as { error: { message: string } }).error.message;
}

describe("admin API", () => {
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "flotilla-admin-"));
    tier = await StorageTestCluster.start({ servers: 2 });
    api = await AdminServer.start({
      store: tier.store,
      registry: tier.registry,
      port: 0,
      tokenFile: join(dir, "admin-token"),
      logger: silent,
      faults: { killNode: async (node) => void killed.push(node) },
    });
  });
  after(async () => {
    await api.close();
    await tier.close();
    await rm(dir, { recursive: true, force: true });
  });

  test("a token is made at first start (mode 0600) and kept; without it every request is 401", async () => {
    assert.equal((await stat(join(dir, "admin-token"))).mode & 0o777, 0o600);
    const none = await request("GET", "/v1/status", undefined, "");
    assert.equal(none.status, 401);
    assert.equal((none.json as { error: { code: string } }).error.code, "UNAUTHORIZED");
    assert.equal((await request("GET", "/v1/status", undefined, "0".repeat(64))).status, 401);
    assert.equal((await request("GET", "/v1/status", undefined, api.token.slice(1))).status, 401);
    const again = await AdminServer.start({
      store: tier.store,
      registry: tier.registry,
      port: 0,
      tokenFile: join(dir, "admin-token"),
      logger: silent,
    });
    assert.equal(again.token, api.token, "the token survives a restart");
    const loose = join(dir, "loose-token");
    await writeFile(loose, `${"ab".repeat(32)}\n`, { mode: 0o644 });
    await assert.rejects(
      AdminServer.start({
        store: tier.store,
        registry: tier.registry,
        port: 0,
        tokenFile: loose,
        logger: silent,
      }),
      /readable by others \(mode 644\); chmod 600/,
    );
    const kill = await fetch(`${again.url}/v1/faults/kill-node`, {
      method: "POST",
      headers: { authorization: `Bearer ${again.token}` },
      body: JSON.stringify({ node: "n1" }),
    });
    assert.equal(kill.status, 404, "no faults without a one-process cluster");
    assert.match(errorMessage(await kill.json()), /only in a one-process cluster/);
    await again.close();
  });

  test("volumes and vservers: made, refused with reasons, changed, deleted", async () => {
    assert.equal((await request("POST", "/v1/volumes", { id: "va", size: "64M" })).status, 200);
    assert.equal((await request("POST", "/v1/volumes", { id: "vb", size: 64 * 1024 * 1024 })).status, 200);
    assert.equal(
      (await request("POST", "/v1/volumes", { id: "va", size: "64M" })).status,
      409,
      "an existing volume",
    );
    const created = await request("POST", "/v1/vservers", {
      id: "a",
      vips: ["127.0.71.1", "127.0.71.2"],
      volume: "va",
    });
    assert.equal(created.status, 200, JSON.stringify(created.json));
    assert.equal(
      (created.json as { handleKey?: string }).handleKey,
      undefined,
      "the handle key never leaves the cluster",
    );

    const taken = await request("POST", "/v1/vservers", {
      id: "b",
      vips: ["127.0.71.1", "127.0.72.2"],
      volume: "vb",
    });
    assert.equal(taken.status, 409);
    assert.match(errorMessage(taken.json), /127\.0\.71\.1 is already used by vserver a/);
    assert.equal(
      (await request("POST", "/v1/vservers", { id: "b", vips: ["224.0.0.1", "127.0.72.2"], volume: "vb" }))
        .status,
      400,
      "a multicast address is no VIP",
    );
    assert.equal(
      (await request("POST", "/v1/vservers", { id: "b", vips: ["127.0.72.1"], volume: "vb" })).status,
      400,
      "one VIP",
    );
    assert.equal(
      (await request("POST", "/v1/vservers", { id: "b", vips: ["127.0.72.1", "127.0.72.2"], volume: "nope" }))
        .status,
      404,
    );
    assert.equal(
      (await request("POST", "/v1/vservers", { id: "b", vips: ["127.0.72.1", "127.0.72.2"], volume: "va" }))
        .status,
      409,
      "a volume has one vserver",
    );
    assert.equal(
      (await request("POST", "/v1/vservers", { id: "b", vips: [], volume: "vb", bogus: 1 })).status,
      400,
      "unknown fields",
    );
    assert.equal((await request("POST", "/v1/vservers", "{ not json")).status, 400);
    assert.equal((await request("POST", "/v1/volumes", "x".repeat(70 * 1024))).status, 413);
    const streamed = await fetch(`${api.url}/v1/volumes`, {
      method: "POST",
      headers: { authorization: `Bearer ${api.token}` },
      body: new Blob(["x".repeat(1024 * 1024)]).stream(),
      duplex: "half",
    });
    assert.equal(streamed.status, 413, "a chunked body past the bound");
    assert.equal((await request("GET", "/v1/status")).status, 200, "the next request after a 413 is served");

    assert.equal((await request("DELETE", "/v1/vservers/ghost")).status, 404);
    assert.equal((await request("POST", "/v1/vservers/a/pin")).status, 200);
    assert.equal((await request("PUT", "/v1/vservers/a/priority", { priority: 7 })).status, 200);
    assert.equal((await request("POST", "/v1/vservers/a/vips", { vip: "127.0.71.3" })).status, 200);
    assert.equal((await request("DELETE", "/v1/vservers/a/vips/127.0.71.1")).status, 200);
    assert.equal((await request("POST", "/v1/vservers/a/exports", { rule: "10.0.0.0/8(ro)" })).status, 200);
    assert.equal(
      (await request("POST", "/v1/vservers/a/exports", { rule: "10.0.0.0/8(bogus)" })).status,
      400,
    );
    let doc = await status();
    const a = doc.vservers.find((v) => v.id === "a");
    assert.deepEqual(
      { pinned: a?.pinned, priority: a?.priority, vips: a?.vips, exports: a?.exports, state: a?.state },
      {
        pinned: true,
        priority: 7,
        vips: ["127.0.71.2", "127.0.71.3"],
        exports: ["127.0.0.0/8(rw,no_root_squash)", "10.0.0.0/8(ro)"],
        state: "down",
      },
    );
    assert.equal((await request("DELETE", "/v1/vservers/a/vips/127.0.71.2")).status, 400, "two VIPs stay");
    const va = doc.volumes.find((v) => v.id === "va");
    assert.deepEqual(
      { vserver: va?.vserver, state: va?.state, ownerEpoch: va?.ownerEpoch },
      { vserver: "a", state: "ok", ownerEpoch: 0 },
    );

    // Moves: to a node never seen (404) and to a node known but dead (409).
    assert.equal((await request("POST", "/v1/vservers/a/move", { node: "n9" })).status, 404);
    await tier.store.put(
      clusterKeys.nodeSettings("n8"),
      encodeRecord(nodeSettingsSchema, { operatorState: "enabled", changedAtMs: 0 }),
    );
    const dead = await request("POST", "/v1/vservers/a/move", { node: "n8" });
    assert.equal(dead.status, 409);
    assert.match(errorMessage(dead.json), /dead/);
    assert.equal((await request("POST", "/v1/nodes/n8/drain")).status, 200);
    assert.equal((await request("POST", "/v1/nodes/n9/drain")).status, 404);
    doc = await status();
    assert.equal(doc.nodes.find((n) => n.id === "n8")?.operatorState, "draining");

    assert.equal((await request("DELETE", "/v1/volumes/va")).status, 409, "a volume in use stays");
    await tier.store.put(
      clusterKeys.connections("a"),
      encodeRecord(connectionsRecordSchema, { nodeId: "n8", atMs: 0, connections: [] }),
    );
    assert.equal((await request("DELETE", "/v1/vservers/a")).status, 200);
    assert.equal(
      await tier.store.get(clusterKeys.connections("a")),
      undefined,
      "its connections went with it",
    );
    assert.equal((await request("DELETE", "/v1/volumes/va")).status, 200);
    assert.equal((await request("POST", "/v1/faults/kill-node", { node: "n1" })).status, 200);
    assert.deepEqual(killed, ["n1"]);
  });

  test("flotilla verbs: human and --json output, exit codes scripts rely on", async () => {
    const tokenFile = join(dir, "admin-token");
    const flotillaAt = (apiUrl: string, token: string, ...args: string[]) =>
      run(process.execPath, [MAIN, ...args, "--api", apiUrl, "--token-file", token], { timeoutMs: 30_000 });
    const flotilla = (...args: string[]) => flotillaAt(api.url, tokenFile, ...args);
    const made = await flotilla(
      "vserver",
      "create",
      "c",
      "--vip",
      "127.0.73.1",
      "--vip",
      "127.0.73.2",
      "--volume",
      "vb",
      "--priority",
      "5",
    );
    assert.equal(made.status, 0, made.stderr);
    assert.equal(
      made.stdout,
      "created vserver c (VIPs 127.0.73.1, 127.0.73.2, volume vb); the master places it\n",
    );

    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const idleUrl = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const wrongTokenFile = join(dir, "wrong-token");
    await writeFile(wrongTokenFile, `${"ab".repeat(32)}\n`, { mode: 0o600 });
    const [json, human, ghost, taken, badPriority, badPort, missingToken, wrongToken, down] =
      await Promise.all([
        flotilla("status", "--json"),
        flotilla("status"),
        flotilla("vserver", "delete", "ghost"),
        flotilla("vip", "add", "c", "127.0.73.1"),
        flotilla("vserver", "priority", "c", "x"),
        flotilla(
          "vserver",
          "create",
          "d",
          "--vip",
          "127.0.74.1",
          "--vip",
          "127.0.74.2",
          "--volume",
          "vb",
          "--nfs-port",
          "x",
        ),
        flotillaAt(api.url, join(dir, "nope"), "status"),
        flotillaAt(api.url, wrongTokenFile, "status"),
        flotillaAt(idleUrl, tokenFile, "status"),
      ]);
    assert.equal(json.status, 7, "a vserver placed nowhere is not running");
    const c = (JSON.parse(json.stdout) as StatusDocument).vservers.find((v) => v.id === "c");
    assert.deepEqual({ state: c?.state, priority: c?.priority }, { state: "down", priority: 5 });
    assert.equal(human.status, 7);
    assert.match(human.stdout, /^NODE\s+STATE/m);
    assert.match(human.stdout, /^VSERVER\s+STATE\s+NODE.*VIPS\s+URL$/m);
    assert.match(human.stdout, /^c\s+down\s+-\s+5\s+no\s+-\s+127\.0\.73\.1,127\.0\.73\.2\s+-$/m);
    assert.match(
      human.stdout,
      /^VOLUME\s+STATE\s+SIZE\s+REPLICAS\s+VSERVER\s+CHUNKS\s+SHORT\s+NO COPY\s+MOVING$/m,
    );
    assert.match(human.stdout, /^vb\s+ok\s+64\.0 MiB\s+2\s+c\s+16\s+0\s+0\s+0$/m);
    assert.equal(ghost.status, 3, ghost.stderr);
    assert.match(ghost.stderr, /^vserver delete: .*ghost/);
    assert.equal(taken.status, 4, taken.stderr);
    assert.equal(badPriority.status, 2, "a usage error");
    assert.equal(badPort.status, 2, badPort.stderr);
    assert.match(badPort.stderr, /"x" is not a port/);
    assert.equal(missingToken.status, 6);
    assert.match(missingToken.stderr, /nope/);
    assert.equal(wrongToken.status, 6, wrongToken.stderr);
    assert.match(wrongToken.stderr, /token from .*wrong-token/, "names the token file it used");
    assert.equal(down.status, 5);
    assert.match(
      down.stderr,
      new RegExp(`${idleUrl} cannot be reached \\(.*ECONNREFUSED`),
      "names the URL it tried",
    );

    // No server has published a load here, so the balancer has nothing to say but why.
    const [plan, planJson, both] = await Promise.all([
      flotilla("storage", "balance", "--plan"),
      flotilla("storage", "balance", "--json"),
      flotilla("storage", "balance", "--plan", "--apply"),
    ]);
    assert.equal(plan.status, 0, plan.stderr);
    assert.match(plan.stdout, /^max\/mean load \d+\.\d\d now, \d+\.\d\d after the 0 moves planned$/m);
    const parsed = JSON.parse(planJson.stdout) as { moves: unknown[]; idle: string | null };
    assert.deepEqual(parsed.moves, []);
    assert.ok(parsed.idle !== null, "says why nothing moves");
    assert.equal(both.status, 2, both.stderr);
    assert.match(both.stderr, /--plan or --apply/);

    const deleted = await flotilla("vserver", "delete", "c");
    assert.equal(deleted.status, 0, deleted.stderr);
    const empty = await flotilla("status");
    assert.equal(empty.status, 0, `no vserver is down: ${empty.stdout}${empty.stderr}`);
  });

  test("the dashboard: a log-in page without the token, a cookie after log-in that reads but never writes", async () => {
    const root = await fetch(`${api.url}/`, { redirect: "manual" });
    assert.equal(root.status, 303);
    assert.equal(root.headers.get("location"), "/ui");

    const anonymous = await fetch(`${api.url}/ui`);
    assert.equal(anonymous.status, 200);
    const login = await anonymous.text();
    assert.match(login, /action="\/ui\/login"/);
    assert.ok(login.includes(join(dir, "admin-token")), "the log-in page names the token file");
    assert.doesNotMatch(login, /id="nodes"/, "no dashboard before log-in");
    assert.match(anonymous.headers.get("content-security-policy") ?? "", /script-src 'self'/);

    const form = (token: string) =>
      fetch(`${api.url}/ui/login`, {
        method: "POST",
        redirect: "manual",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ token }).toString(),
      });
    const wrong = await form("0".repeat(64));
    assert.equal(wrong.status, 401);
    assert.match(await wrong.text(), /not the admin token/);
    assert.equal(wrong.headers.get("set-cookie"), null);

    const right = await form(api.token);
    assert.equal(right.status, 303);
    const setCookie = right.headers.get("set-cookie") ?? "";
    assert.match(setCookie, /HttpOnly; SameSite=Strict/);
    const cookie = setCookie.split(";")[0]!;

    const dashboard = await fetch(`${api.url}/ui`, { headers: { cookie } });
    assert.match(await dashboard.text(), /id="nodes"/);
    const read = await fetch(`${api.url}/v1/status`, { headers: { cookie } });
    assert.equal(read.status, 200, "the cookie reads the status");
    assert.ok(Array.isArray(((await read.json()) as StatusDocument).migrations));
    const write = await fetch(`${api.url}/v1/volumes`, {
      method: "POST",
      headers: { cookie, "content-type": "application/json" },
      body: JSON.stringify({ id: "by-cookie", size: "64M" }),
    });
    assert.equal(write.status, 401, "a cookie never authorizes a change");

    const script = await fetch(`${api.url}/ui/app/page/dashboard.ts`);
    assert.equal(script.status, 200, "the modules load before log-in: they hold no data");
    assert.match(script.headers.get("content-type") ?? "", /^text\/javascript/);
    assert.doesNotMatch(await script.text(), /import type/);
    assert.equal((await fetch(`${api.url}/ui/app/../admin-server.ts`)).status, 404);
    assert.equal((await fetch(`${api.url}/ui/app/tsconfig.json`)).status, 404);

    const logout = await fetch(`${api.url}/ui/logout`, { method: "POST", redirect: "manual" });
    assert.equal(logout.status, 303);
    assert.match(logout.headers.get("set-cookie") ?? "", /Max-Age=0/);
  });
});
