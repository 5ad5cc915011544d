/**
 * The storage tier as an operator runs it: `flotilla storage serve` processes joined through a real
 * etcd, a filer (this process) writing a verifying load on a replicated volume. A server is killed
 * with SIGKILL and restarted; an old owner is refused by every server, including one that was down
 * while the volume changed hands; a server is drained with `flotilla storage drain`.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { BlockDeviceError } from "../../src/block/index.ts";
import { RemoteBlockDevice } from "../../src/block/remote-device.ts";
import { readSecretFile, writeSecretFile } from "../../src/storage/secret-file.ts";
import { ServerRegistry } from "../../src/storage/server-registry.ts";
import { RemoteStorageClient } from "../../src/storage/storage-client.ts";
import { createVolume } from "../../src/storage/volumes.ts";
import { EtcdStore } from "../../src/store/index.ts";
import { type EtcdProcess, etcdSkipReason, startEtcd } from "../support/etcd-process.ts";
import { type StorageProcess, spawnStorageServer, tempDir } from "../support/storage-process.ts";
import { replicasAgree, WriteLoad } from "../support/write-load.ts";

const MAIN = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));
const MiB = 1024 * 1024;
const VOLUME_BYTES = 16 * MiB;
const CHUNK_BLOCKS = 256;
const LEASE_TTL_MS = 1000;

const skip = etcdSkipReason();
let namespaceCount = 0;

/** Three storage server processes in one etcd namespace, and a filer's view of them. */
class Tier implements AsyncDisposable {
  readonly servers = new Map<string, StorageProcess>();
  store!: EtcdStore;
  registry!: ServerRegistry;
  readonly namespace = `t${++namespaceCount}-${process.pid}/`;
  private readonly devices: RemoteBlockDevice[] = [];

  readonly etcd: EtcdProcess;
  readonly root: string;
  readonly secretFile: string;

  constructor(etcd: EtcdProcess, root: string, secretFile: string) {
    this.etcd = etcd;
    this.root = root;
    this.secretFile = secretFile;
  }

  async start(): Promise<void> {
    const secret = await readSecretFile(this.secretFile);
    this.store = await EtcdStore.connect({ endpoints: [this.etcd.endpoint], namespace: this.namespace });
    this.registry = await ServerRegistry.open(
      this.store,
      (r) => new RemoteStorageClient({ serverId: r.serverId, host: r.host, port: r.port, secret }),
    );
    for (const id of ["s1", "s2", "s3"]) await this.startServer(id);
  }

  async startServer(id: string): Promise<void> {
    const server = await spawnStorageServer([
      ...["--data", `${this.root}/${this.namespace.replace("/", "")}-${id}`, "--id", id],
      ...["--secret-file", this.secretFile, "--capacity", "1G", "--etcd", this.etcd.endpoint],
      ...["--namespace", this.namespace, "--lease-ttl", String(LEASE_TTL_MS)],
    ]);
    this.servers.set(id, server);
    await until(() => this.registry.addressOf(id)?.port === server.port, `${id} registered`);
  }

  async kill(id: string): Promise<void> {
    const server = this.servers.get(id);
    assert.ok(server !== undefined);
    assert.equal(await server.stop("SIGKILL"), "SIGKILL");
    this.servers.delete(id);
  }

  async open(volumeId: string, filerId: string): Promise<{ device: RemoteBlockDevice; epoch: number }> {
    const { device, epoch } = await RemoteBlockDevice.takeOver({
      store: this.store,
      servers: this.registry,
      volumeId,
      filerId,
      stallMaxMs: 20_000,
    });
    this.devices.push(device);
    return { device, epoch };
  }

  /** Makes volume "vol" and opens it as filer-a, under a verifying load once `loadSeed` is given. */
  async volume(
    replicationFactor: number,
    loadSeed?: number,
  ): Promise<{ device: RemoteBlockDevice; load: WriteLoad | undefined }> {
    await createVolume(this.store, this.registry, {
      volumeId: "vol",
      sizeBytes: VOLUME_BYTES,
      replicationFactor,
      chunkBlocks: CHUNK_BLOCKS,
    });
    const { device } = await this.open("vol", "filer-a");
    if (loadSeed === undefined) return { device, load: undefined };
    const load = new WriteLoad(device, { blockSpan: VOLUME_BYTES / 4096, writers: 4, seed: loadSeed });
    load.start();
    await load.until(30);
    return { device, load };
  }

  /** Runs the CLI against this tier; resolves with its exit code and output. */
  cli(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const child = spawn(
      process.execPath,
      [MAIN, ...args, "--etcd", this.etcd.endpoint, "--namespace", this.namespace],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (t: string) => (stdout += t));
    child.stderr.setEncoding("utf8").on("data", (t: string) => (stderr += t));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(new Error(`flotilla ${args.join(" ")} did not finish in 60 s:\n${stdout}\n${stderr}`));
      }, 60_000);
      child.once("exit", (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await Promise.allSettled(this.devices.map((d) => d.close()));
    await Promise.allSettled([...this.servers.values()].map((s) => s.stop("SIGKILL")));
    await this.registry?.close();
    await this.store?.close();
  }
}

async function until(condition: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    assert.ok(performance.now() < deadline, `timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function settle(tier: Tier, device: RemoteBlockDevice, load: WriteLoad): Promise<void> {
  await load.stop();
  assert.deepEqual(load.errors, [], "no client write or flush failed");
  assert.ok((await load.verify()) > 100, "the load wrote enough to mean something");
  await replicasAgree(device, tier.registry);
}

describe("storage tier in processes, joined through etcd", { skip, timeout: 180_000 }, () => {
  let etcd: EtcdProcess;
  let dir: { path: string } & AsyncDisposable;
  let secretFile: string;

  before(async () => {
    etcd = await startEtcd();
    dir = await tempDir("flotilla-tier-");
    secretFile = `${dir.path}/secret`;
    await writeSecretFile(secretFile, false);
  });
  after(async () => {
    await etcd?.stop();
    await dir?.[Symbol.asyncDispose]();
  });

  test("SIGKILL of a storage server under load, then a restart: nothing acknowledged is lost", async () => {
    await using tier = new Tier(etcd, dir.path, secretFile);
    await tier.start();
    const { device, load } = await tier.volume(2, 3);
    assert.ok(load !== undefined);
    await tier.kill("s2");
    const writesAtKill = load.writes;
    await new Promise((resolve) => setTimeout(resolve, 300));
    await tier.startServer("s2");
    await load.until(100);
    assert.ok(load.writes >= writesAtKill + 100);
    await settle(tier, device, load);
  });

  test("an old owner is refused by every server, also by one that was down while the volume changed hands", async () => {
    await using tier = new Tier(etcd, dir.path, secretFile);
    await tier.start();
    const { device: old } = await tier.volume(3);
    await old.write(0, new Uint8Array(4096).fill(1));
    await old.flush();
    // s3 is down while filer-b takes the volume over; it comes back afterwards.
    await tier.kill("s3");
    const { device: current } = await tier.open("vol", "filer-b");
    // Back before any request of the new owner reached it: it must have learned the epoch from etcd.
    await tier.startServer("s3");
    const s3 = tier.registry.clientFor("s3");
    assert.ok(s3 !== undefined);
    assert.equal(await s3.ownerEpoch("vol"), 2, "s3 learned the new owner's epoch before serving");
    await current.write(0, new Uint8Array(4096).fill(2));
    await current.flush();
    // The old owner asks s3 directly (the server it could still have reached): refused.
    await assert.rejects(
      s3.write({ volumeId: "vol", chunkIndex: 0 }, 1, 0, new Uint8Array(4096).fill(9)),
      (e: unknown) =>
        e instanceof Error && /FENCED|fenced/.test(`${(e as { code?: string }).code} ${e.message}`),
    );
    await assert.rejects(
      old.write(0, new Uint8Array(4096).fill(9)),
      (e: unknown) => e instanceof BlockDeviceError && e.code === "FENCED",
    );
    for (const id of ["s1", "s2", "s3"]) {
      const client = tier.registry.clientFor(id);
      assert.ok(client !== undefined);
      const block = await client.read({ volumeId: "vol", chunkIndex: 0 }, 0, 0, 1);
      assert.equal(block[0], 2, `${id} holds what the new owner wrote, nothing of the old one`);
    }
  });

  test("flotilla storage drain moves every chunk off a server under load; status reports it", async () => {
    await using tier = new Tier(etcd, dir.path, secretFile);
    await tier.start();
    const { device, load } = await tier.volume(2, 5);
    assert.ok(load !== undefined);
    const drained = await tier.cli(["storage", "drain", "s1", "--secret-file", secretFile]);
    assert.equal(drained.code, 0, drained.stderr);
    assert.match(drained.stderr, /drain s1: \d+\/\d+ chunks/, "progress lines on stderr");
    assert.match(drained.stdout, /drained s1/);
    const chunks = VOLUME_BYTES / 4096 / CHUNK_BLOCKS;
    for (let i = 0; i < chunks; i++) {
      assert.ok(!device.routeOf(i).replicas.some((r) => r.serverId === "s1"), `chunk ${i} still on s1`);
    }
    await settle(tier, device, load);
    // With s1 drained and RF=2, s2's chunks each have their other copy on s3: nowhere to go.
    const stuck = await tier.cli(["storage", "drain", "s2", "--secret-file", secretFile]);
    assert.equal(stuck.code, 1);
    assert.match(stuck.stderr, /storage drain: cannot drain s2: .*nowhere to go/);
    const status = await tier.cli(["storage", "status", "--json"]);
    assert.equal(status.code, 0, status.stderr);
    const report = JSON.parse(status.stdout) as {
      servers: { serverId: string; state: string; chunks: number }[];
      volumes: { volumeId: string; underReplicated: number }[];
    };
    assert.deepEqual(
      report.servers.map((s) => [s.serverId, s.state]),
      [
        ["s1", "draining"],
        ["s2", "draining"],
        ["s3", "alive"],
      ],
    );
    assert.equal(report.servers[0]?.chunks, 0);
    assert.equal(report.volumes[0]?.underReplicated, 0);
  });
});
