/**
 * The volume file system on a RemoteBlockDevice over three real storage servers (loopback TCP, data
 * in temporary directories): the model-based suite, a filer crash followed by a new owner (fencing),
 * and damaged copies (read fallback, read repair, and a clear error when no good copy is left).
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import fc from "fast-check";
import { BlockDeviceError } from "../../src/block/index.ts";
import { FsError, fsck, listUsedBlocks, mkfs, mount, type Volume } from "../../src/fs/index.ts";
import { ManualClock } from "../../src/util/clock.ts";
import { flipByteInChunkFile } from "../support/chunk-files.ts";
import { DualRunner } from "../support/dual-runner.ts";
import { keepOpen } from "../support/keep-open.ts";
import { envInt, runModelSequence } from "../support/model-sequence.ts";
import { ModelVolume } from "../support/model-volume.ts";
import { type OpProfile, opArbitrary, PROPERTY_PROFILE } from "../support/op-arbitraries.ts";
import { StorageTestCluster } from "../support/storage-cluster.ts";
import { dumpTree } from "../support/tree-dump.ts";

const MiB = 1024 * 1024;
const VOLUME_BYTES = 64 * MiB;
/** Small chunks, so even small volumes spread over every server and cross many chunk boundaries. */
const CHUNK_BLOCKS = 64;

/** As the crash suite's: no far offsets, so every state's tree can be dumped and compared whole. */
const CRASH_PROFILE: OpProfile = { ...PROPERTY_PROFILE, farOffsets: false, check: false, populateMax: 120 };

let cluster: StorageTestCluster;
let volumeCount = 0;
const nextVolumeId = (): string => `v${++volumeCount}`;

before(async () => {
  cluster = await StorageTestCluster.start({ servers: 3 });
});
after(async () => {
  await cluster.close();
});

test("model suite: the file system on a remote volume (RF=2, 3 servers) behaves as the model", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(opArbitrary(PROPERTY_PROFILE), { minLength: 30, maxLength: 80 }),
      async (ops) => {
        const volumeId = nextVolumeId();
        await cluster.createVolume(volumeId, VOLUME_BYTES, 2, CHUNK_BLOCKS);
        const { device } = await cluster.openDevice(volumeId);
        try {
          await runModelSequence(ops, device);
        } finally {
          await device.close();
        }
      },
    ),
    { numRuns: envInt("FLOTILLA_REMOTE_PROPERTY_RUNS", 12), verbose: 1 },
  );
});

test("filer crash: a new owner mounts a consistent volume; the old owner is fenced everywhere", async () => {
  for (let seed = 1; seed <= envInt("FLOTILLA_REMOTE_CRASH_SEEDS", 6); seed++) {
    const volumeId = nextVolumeId();
    await cluster.createVolume(volumeId, VOLUME_BYTES, 2, CHUNK_BLOCKS);
    const { device: first } = await cluster.openDevice(volumeId, "filer-a");
    const clock = new ManualClock();
    await mkfs(keepOpen(first), { clock });
    const options = { txgIntervalMs: 0, clock };
    const volume = await mount(keepOpen(first), options);
    const root = await volume.getattr(volume.rootRef);
    const runner = new DualRunner(
      new ModelVolume({ rootMode: root.mode, rootUid: root.uid, rootGid: root.gid }),
      volume,
      () => mount(keepOpen(first), options),
    );
    const [ops] = fc.sample(
      fc.noBias(fc.array(opArbitrary(CRASH_PROFILE), { minLength: 20, maxLength: 50 })),
      {
        seed,
        numRuns: 1,
      },
    );
    assert.ok(ops !== undefined);
    const models: ModelVolume[] = [runner.model.clone()];
    let lastDurable = 0;
    for (let i = 0; i < ops.length; i++) {
      clock.advance(1);
      const outcome = await runner.run(ops[i]!, i);
      models.push(runner.model.clone());
      if (outcome.durable) lastDurable = i + 1;
    }
    // The filer dies here: no unmount, no final commit. Another node takes the volume over.
    const { device: second } = await cluster.openDevice(volumeId, "filer-b");
    const report = await fsck(keepOpen(second), { repair: false });
    assert.deepEqual(report.problems, [], `seed ${seed}: fsck after the crash`);
    const recovered = await mount(keepOpen(second), {
      txgIntervalMs: 0,
      clock: new ManualClock(1_800_000_000),
    });
    const dump = JSON.stringify(await dumpTree(recovered));
    let matched = -1;
    for (let p = ops.length; p >= lastDurable && matched < 0; p--) {
      const model = models[p]!;
      if (JSON.stringify(await dumpTree(model, { contentKey: (ref) => model.contentKey(ref) })) === dump)
        matched = p;
    }
    assert.ok(
      matched >= 0,
      `seed ${seed}: the recovered tree is no state between op ${lastDurable} and ${ops.length}`,
    );

    // The old owner's writes are refused by every storage server: its commit fails FENCED...
    await assert.rejects(
      (async () => {
        const live = runner.real;
        await live.mkdir(ROOT_CREDS, live.rootRef, `after-fence-${seed}`, { mode: 0o755 });
        await live.commit();
      })(),
      (error: unknown) => isFenced(error),
      `seed ${seed}: the old owner could still commit`,
    );
    // ...its device refuses everything from now on, and nothing it tried reached the volume.
    await assert.rejects(
      first.write(0, new Uint8Array(4096)),
      (e: unknown) => e instanceof BlockDeviceError && e.code === "FENCED",
    );
    assert.equal(JSON.stringify(await dumpTree(recovered)), dump);
    await recovered.unmount();
    await first.close();
  }
});

function isFenced(error: unknown): boolean {
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    if (e instanceof BlockDeviceError && e.code === "FENCED") return true;
    if (e instanceof FsError && /fenced/i.test(e.message)) return true;
  }
  return false;
}

const ROOT_CREDS = { uid: 0, gid: 0, gids: [] };

/** Writes a file of `bytes` and commits; returns its data. */
async function writeFile(volume: Volume, name: string, bytes: number): Promise<Uint8Array> {
  const { ref } = await volume.create(ROOT_CREDS, volume.rootRef, name, {
    kind: "unchecked",
    attrs: { mode: 0o644 },
  });
  const data = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) data[i] = (i * 7 + name.length) & 0xff;
  await volume.write(ROOT_CREDS, ref, 0, data, "file-sync");
  await volume.commit();
  return data;
}

test("damaged copies: reads fall back to the other replica and repair the damaged one", async () => {
  const volumeId = nextVolumeId();
  const record = await cluster.createVolume(volumeId, VOLUME_BYTES, 2, CHUNK_BLOCKS);
  const { device } = await cluster.openDevice(volumeId);
  await mkfs(keepOpen(device));
  const volume = await mount(keepOpen(device), { txgIntervalMs: 0 });
  const data = await writeFile(volume, "precious", 512 * 1024);
  await volume.unmount();
  // Damage every block in use (superblocks, tree, data) on one replica of its chunk.
  const used = await listUsedBlocks(keepOpen(device));
  const blocks = [0, 1, ...used.metadata, ...used.data.map((d) => d.blockIndex)];
  for (const block of blocks) {
    const chunkIndex = Math.floor(block / record.chunkBlocks);
    const serverId = device.routeOf(chunkIndex).replicas[chunkIndex % 2]!.serverId;
    await flipByteInChunkFile(cluster.dataDirOf(serverId), volumeId, chunkIndex, block % record.chunkBlocks);
  }
  // A fresh mount has no cached blocks: every read goes to the servers.
  const again = await mount(keepOpen(device), { txgIntervalMs: 0 });
  const { ref } = await again.lookup(ROOT_CREDS, again.rootRef, "precious");
  const read = await again.read(ROOT_CREDS, ref, 0, data.length);
  assert.deepEqual(read.data, data, "the file reads back intact from the good copies");
  await again.unmount();
  assert.deepEqual((await fsck(keepOpen(device), { repair: false })).problems, []);
  // Read repair rewrote each damaged copy: the replicas agree block for block.
  for (let chunkIndex = 0; chunkIndex < Math.ceil(record.blockCount / record.chunkBlocks); chunkIndex++) {
    const replicas = device.routeOf(chunkIndex).replicas.map((r) => r.serverId);
    const sums = await Promise.all(
      replicas.map((id) => cluster.clientOf(id).checksums({ volumeId, chunkIndex }, record.chunkBlocks)),
    );
    assert.deepEqual(sums[0], sums[1], `chunk ${chunkIndex}: replicas differ after read repair`);
  }
  await device.close();
});

test("a damaged block with no good copy left (RF=1): reads fail with IO naming the block", async () => {
  const volumeId = nextVolumeId();
  const record = await cluster.createVolume(volumeId, VOLUME_BYTES, 1, CHUNK_BLOCKS);
  const { device } = await cluster.openDevice(volumeId);
  await mkfs(keepOpen(device));
  const volume = await mount(keepOpen(device), { txgIntervalMs: 0 });
  await writeFile(volume, "lonely", 64 * 1024);
  await volume.unmount();
  const block = (await listUsedBlocks(keepOpen(device))).data[0]!.blockIndex;
  const chunkIndex = Math.floor(block / record.chunkBlocks);
  const serverId = device.routeOf(chunkIndex).replicas[0]!.serverId;
  await flipByteInChunkFile(cluster.dataDirOf(serverId), volumeId, chunkIndex, block % record.chunkBlocks);
  await assert.rejects(device.read(block, 1), (error: unknown) => {
    assert.ok(error instanceof BlockDeviceError, String(error));
    assert.equal(error.code, "IO");
    assert.equal(error.blockIndex, block);
    return true;
  });
  await device.close();
});

test("a flush that overlaps one in progress waits for it: it is not done before the data it covers is", async () => {
  const volumeId = nextVolumeId();
  await cluster.createVolume(volumeId, VOLUME_BYTES, 2, CHUNK_BLOCKS);
  const { device } = await cluster.openDevice(volumeId);
  try {
    await device.write(0, new Uint8Array(4096).fill(7));
    let release = (): void => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const faults = cluster
      .serverIds()
      .map((id) => cluster.clientOf(id).inject({ calls: ["flush"], holdUntil: held }));
    let firstDone = false;
    let secondDone = false;
    const first = device.flush().then(() => {
      firstDone = true;
    });
    // Nothing was written since the first flush took the dirty servers: the second has none of its own.
    const second = device.flush().then(() => {
      secondDone = true;
    });
    for (let turn = 0; turn < 20; turn++) await new Promise((resolve) => setImmediate(resolve));
    assert.equal(firstDone, false);
    assert.equal(secondDone, false, "the second flush waits for the first one's servers");
    release();
    await Promise.all([first, second]);
    for (const fault of faults) fault[Symbol.dispose]();
  } finally {
    await device.close();
  }
});
