/**
 * Vservers on remote volumes, each answering NFS on two VIPs (loopback addresses): a file written
 * through one VIP reads back through the other; a handle of one vserver is refused by another; a
 * takeover by a new owner keeps handles and data, changes the write verifier, and fences the old one.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, test } from "node:test";
import { pino } from "pino";
import type { RemoteBlockDevice } from "../../src/block/remote-device.ts";
import { parseExportRule } from "../../src/nfs/exports.ts";
import { VserverRuntime } from "../../src/service/vserver-runtime.ts";
import { NfsTestClient } from "../support/nfs-test-client.ts";
import { StorageTestCluster } from "../support/storage-cluster.ts";

const MiB = 1024 * 1024;
const NFS3ERR_BADHANDLE = 10001;
const FILE_SYNC = 2;
const silent = pino({ level: "silent" });

let cluster: StorageTestCluster;
before(async () => {
  cluster = await StorageTestCluster.start({ servers: 3 });
});
after(async () => {
  await cluster.close();
});

interface Vserver {
  readonly vserverId: number;
  readonly volumeId: string;
  readonly handleKey: Uint8Array;
  readonly vips: readonly string[];
}

async function run(
  vs: Vserver,
  filerId: string,
  format: boolean,
): Promise<{ runtime: VserverRuntime; device: RemoteBlockDevice }> {
  const { device } = await cluster.openDevice(vs.volumeId, filerId);
  const runtime = await VserverRuntime.start({
    vserverId: vs.vserverId,
    volumeId: 1,
    handleKey: vs.handleKey,
    device,
    format,
    vips: vs.vips,
    nfsPort: 0,
    mountPort: 0,
    exports: [parseExportRule("127.0.0.0/8(rw,no_root_squash)")],
    logger: silent,
  });
  return { runtime, device };
}

async function rootVia(
  runtime: VserverRuntime,
  vip: number,
): Promise<{ nfs: NfsTestClient; root: Uint8Array }> {
  const endpoint = runtime.endpoints[vip];
  assert.ok(endpoint !== undefined);
  const mountd = await NfsTestClient.connect(endpoint.address, endpoint.mountPort);
  const root = await mountd.mount("/");
  await mountd.close();
  return { nfs: await NfsTestClient.connect(endpoint.address, endpoint.nfsPort), root };
}

test("vservers on remote volumes: VIPs, isolation, and a takeover that keeps handles and data", async () => {
  const a: Vserver = {
    vserverId: 11,
    volumeId: "va",
    handleKey: new Uint8Array(randomBytes(32)),
    vips: ["127.0.11.1", "127.0.11.2"],
  };
  const b: Vserver = {
    vserverId: 12,
    volumeId: "vb",
    handleKey: new Uint8Array(randomBytes(32)),
    vips: ["127.0.12.1", "127.0.12.2"],
  };
  await cluster.createVolume("va", 64 * MiB, 2);
  await cluster.createVolume("vb", 64 * MiB, 2);
  const first = await run(a, "node-1", true);
  const other = await run(b, "node-2", true);
  const runtimes = [first.runtime, other.runtime];
  try {
    const one = await rootVia(first.runtime, 0);
    const created = await one.nfs.create(one.root, "hello");
    assert.equal(created.status, 0);
    const file = created.handle!;
    const data = new Uint8Array(100_000).map((_, i) => i & 0xff);
    const written = await one.nfs.write(file, 0, data, FILE_SYNC);
    assert.equal(written.status, 0);

    // The same handle works through the vserver's other VIP.
    const two = await rootVia(first.runtime, 1);
    const read = await two.nfs.read(file, 0, data.length);
    assert.equal(read.status, 0);
    assert.deepEqual(read.data, data);

    // Another vserver refuses it: its handles are keyed by its own secret.
    const stranger = await rootVia(other.runtime, 0);
    assert.equal(await stranger.nfs.getattrStatus(file), NFS3ERR_BADHANDLE);
    assert.equal(await stranger.nfs.getattrStatus(one.root), NFS3ERR_BADHANDLE);

    // Node 1 dies (its runtime just stops answering, nothing committed); node 3 takes the vserver over.
    for (const c of [one.nfs, two.nfs]) await c.close();
    const takeover = await run(a, "node-3", false);
    runtimes.push(takeover.runtime);
    assert.notDeepEqual(takeover.runtime.writeVerifier, first.runtime.writeVerifier, "a new verifier");
    const again = await rootVia(takeover.runtime, 1);
    const after = await again.nfs.read(file, 0, data.length);
    assert.equal(after.status, 0, "the old handle is still good");
    assert.deepEqual(after.data, data, "the FILE_SYNC write survived the takeover");
    // The old node, if it still answered, is fenced: no write through it succeeds.
    const zombie = await rootVia(first.runtime, 0);
    assert.notEqual(
      (await zombie.nfs.write(file, 0, new Uint8Array(4096).fill(7), 0)).status,
      0,
      "the old owner cannot write (its data blocks go to the servers at once, which refuse it)",
    );
    await zombie.nfs.close();
    await first.runtime.stop().catch(() => undefined);
    const still = await again.nfs.read(file, 0, 4096);
    assert.deepEqual(still.data, data.subarray(0, 4096), "nothing of the old owner reached the volume");
    await again.nfs.close();
    await stranger.nfs.close();
  } finally {
    await Promise.allSettled(runtimes.map((r) => r.stop()));
  }
});
