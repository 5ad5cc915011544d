/**
 * Storage-tier benchmark, everything in one run on this machine:
 *
 *   1. sequential write (+ flush) and read of a volume on three local storage servers (separate
 *      processes, registered in a real etcd), RF=1 and RF=2, against the same I/O on a FileBlockDevice;
 *   2. chunk migration rate (every chunk of a filled volume moved off one server) against a raw copy
 *      of the same chunk files between two directories (read, write, fsync);
 *   3. foreground p99 write latency (random 4 KiB writes, 4 in flight) on an idle tier, then while a
 *      throttled migration runs.
 *
 *   npm run bench:storage               (512 MiB sequential, 256 MiB migrated, 6 s latency phases)
 *   npm run bench:storage -- --quick
 *
 * Flags: --mib N, --migrate-mib N, --seconds N, --moves N (chunk moves per server at once, default 4), --bandwidth SIZE (migration cap in phase 3; default
 * 60% of the measured raw copy rate), --dir PATH. Needs `etcd` (Debian package etcd-server).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { copyFile, mkdir, mkdtemp, open, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { BLOCK_BYTES, type BlockDevice, FileBlockDevice } from "../src/block/index.ts";
import { RemoteBlockDevice } from "../src/block/remote-device.ts";
import { ChunkMover, type MovePlan } from "../src/storage/chunk-mover.ts";
import { readSecretFile, writeSecretFile } from "../src/storage/secret-file.ts";
import { ServerRegistry } from "../src/storage/server-registry.ts";
import { createVolume, readRouting, takeOwnership } from "../src/storage/volumes.ts";
import { EtcdStore } from "../src/store/index.ts";
import { SeededRandom } from "../src/util/random.ts";
import { formatBytes, parseSize } from "../src/util/size.ts";
import { startEtcd } from "../test/support/etcd-process.ts";

const MIB = 1024 * 1024;
const IO_BYTES = MIB;
const IO_IN_FLIGHT = 8;
const SERVERS = ["s1", "s2", "s3"] as const;
const NAMESPACE = "bench/";

interface Settings {
  readonly mib: number;
  readonly migrateMib: number;
  readonly seconds: number;
  readonly bandwidth: number | undefined;
  readonly moves: number;
  readonly dir: string;
}

function settings(): Settings {
  const { values } = parseArgs({
    options: {
      quick: { type: "boolean", default: false },
      mib: { type: "string" },
      "migrate-mib": { type: "string" },
      seconds: { type: "string" },
      bandwidth: { type: "string" },
      moves: { type: "string" },
      dir: { type: "string" },
    },
  });
  const count = (text: string | undefined, fallback: number, name: string): number => {
    if (text === undefined) return fallback;
    const value = Number(text);
    if (!Number.isSafeInteger(value) || value <= 0)
      throw new RangeError(`--${name} must be a positive count, got ${text}`);
    return value;
  };
  return {
    mib: count(values.mib, values.quick ? 128 : 512, "mib"),
    migrateMib: count(values["migrate-mib"], values.quick ? 64 : 256, "migrate-mib"),
    seconds: count(values.seconds, values.quick ? 3 : 6, "seconds"),
    bandwidth: values.bandwidth === undefined ? undefined : parseSize(values.bandwidth),
    moves: count(values.moves, 4, "moves"),
    dir: values.dir ?? tmpdir(),
  };
}

const say = (text: string): void => void process.stderr.write(`${text}\n`);

function report(label: string, value: number, unit: string, peer: number, peerName: string): void {
  const ratio = peer === 0 ? "n/a" : (value / peer).toFixed(2);
  console.log(
    `${label.padEnd(44)} ${value.toFixed(1).padStart(9)} ${unit.padEnd(5)} ${peerName} ${peer.toFixed(1).padStart(9)}  ratio ${ratio}`,
  );
}

// --- The tier: etcd and three storage server processes ---------------------------------------------

async function startServer(
  root: string,
  id: string,
  etcdEndpoint: string,
  secretFile: string,
): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    [
      "src/cli/main.ts",
      "storage",
      "serve",
      "--data",
      join(root, id),
      "--id",
      id,
      "--secret-file",
      secretFile,
      "--port",
      "0",
      "--capacity",
      "64G",
      "--etcd",
      etcdEndpoint,
      "--namespace",
      NAMESPACE,
      "--log-level",
      "warn",
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const lines = createInterface({ input: child.stdout! });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`storage server ${id} did not start in 20 s`)), 20_000);
    child.once("exit", (code) => reject(new Error(`storage server ${id} exited with ${code}`)));
    lines.on("line", (line) => {
      if (line.includes("listening on")) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return child;
}

// --- Sequential I/O -------------------------------------------------------------------------------

/** Runs `io` on every 1 MiB request of the first `bytes`, IO_IN_FLIGHT at once: MB/s. */
async function sequential(bytes: number, io: (blockIndex: number) => Promise<unknown>): Promise<number> {
  const requests = bytes / IO_BYTES;
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: IO_IN_FLIGHT }, async () => {
      while (next < requests) await io((next++ * IO_BYTES) / BLOCK_BYTES);
    }),
  );
  return bytes / MIB / ((performance.now() - started) / 1000);
}

/** Writes `bytes` from block 0, then flushes: MB/s including the flush. */
async function sequentialWrite(device: BlockDevice, bytes: number): Promise<number> {
  const data = new Uint8Array(IO_BYTES);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
  const started = performance.now();
  await sequential(bytes, (blockIndex) => device.write(blockIndex, data));
  await device.flush();
  return bytes / MIB / ((performance.now() - started) / 1000);
}

function sequentialRead(device: BlockDevice, bytes: number): Promise<number> {
  return sequential(bytes, (blockIndex) => device.read(blockIndex, IO_BYTES / BLOCK_BYTES));
}

// --- Latency --------------------------------------------------------------------------------------

/** Random 4 KiB writes, 4 in flight, for `seconds`: the latencies in ms. */
async function randomWriteLatencies(device: BlockDevice, seconds: number, seed: number): Promise<number[]> {
  const random = new SeededRandom(seed);
  const block = new Uint8Array(BLOCK_BYTES).fill(7);
  const latencies: number[] = [];
  const until = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (performance.now() < until) {
        const started = performance.now();
        await device.write(random.int(device.blockCount), block);
        latencies.push(performance.now() - started);
      }
    }),
  );
  return latencies.sort((a, b) => a - b);
}

const percentile = (sorted: readonly number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? 0;

// --- Raw copy -------------------------------------------------------------------------------------

/** Copies every file of `from` into `to` and fsyncs each copy: MB/s over `bytes`. */
async function rawCopy(from: string, to: string, bytes: number): Promise<number> {
  await mkdir(to, { recursive: true });
  const started = performance.now();
  for (const name of await readdir(from)) {
    await copyFile(join(from, name), join(to, name));
    const handle = await open(join(to, name), "r+");
    await handle.sync();
    await handle.close();
  }
  return bytes / MIB / ((performance.now() - started) / 1000);
}

async function main(): Promise<void> {
  const s = settings();
  const root = await mkdtemp(join(s.dir, "flotilla-bench-storage-"));
  const children: ChildProcess[] = [];
  const etcd = await startEtcd();
  try {
    const secretFile = join(root, "secret");
    await writeSecretFile(secretFile, false);
    const secret = await readSecretFile(secretFile);
    say(`starting etcd and ${SERVERS.length} storage servers in ${root}`);
    for (const id of SERVERS) children.push(await startServer(root, id, etcd.endpoint, secretFile));
    const store = await EtcdStore.connect({ endpoints: [etcd.endpoint], namespace: NAMESPACE });
    const registry = await ServerRegistry.openWithSecret(store, secret);
    while (registry.servers().length < SERVERS.length)
      await new Promise((resolve) => setTimeout(resolve, 20));
    const open = async (volumeId: string): Promise<RemoteBlockDevice> =>
      RemoteBlockDevice.open({
        store,
        servers: registry,
        volumeId,
        ownerEpoch: await takeOwnership(store, volumeId, "bench"),
        filerId: "bench",
      });

    console.log(`# storage tier: 3 storage servers (processes), etcd, this machine; ${s.mib} MiB sequential`);
    // 1. Sequential I/O against a FileBlockDevice.
    const file = await FileBlockDevice.create(join(root, "file-device"), s.mib * MIB);
    const fileWrite = await sequentialWrite(file, s.mib * MIB);
    const fileRead = await sequentialRead(file, s.mib * MIB);
    await file.close();
    for (const rf of [1, 2]) {
      say(`sequential I/O, RF=${rf}`);
      await createVolume(store, registry, {
        volumeId: `seq${rf}`,
        sizeBytes: s.mib * MIB,
        replicationFactor: rf,
      });
      const device = await open(`seq${rf}`);
      report(
        `sequential write + flush, RF=${rf} (MB/s)`,
        await sequentialWrite(device, s.mib * MIB),
        "MB/s",
        fileWrite,
        "file",
      );
      report(
        `sequential read, RF=${rf} (MB/s)`,
        await sequentialRead(device, s.mib * MIB),
        "MB/s",
        fileRead,
        "file",
      );
      await device.close();
    }

    // 2. Migration against a raw copy of the same chunk files.
    say("migration: filling a volume, then moving every chunk off s1");
    await createVolume(store, registry, {
      volumeId: "mig",
      sizeBytes: s.migrateMib * MIB,
      replicationFactor: 1,
    });
    const mig = await open("mig");
    await sequentialWrite(mig, s.migrateMib * MIB);
    const volume = {
      volumeId: "mig",
      blockCount: (s.migrateMib * MIB) / BLOCK_BYTES,
      chunkBlocks: 1024,
      replicationFactor: 1,
    };
    const plansOf = async (from: string, to: string, volumeId: string): Promise<MovePlan[]> => {
      const { routes } = await readRouting(store, { ...volume, volumeId });
      return routes.flatMap(({ route }, chunkIndex) =>
        route.replicas.some((r) => r.serverId === from)
          ? [{ volumeId, chunkIndex, from, to, reason: "operator" as const, keepSource: false }]
          : [],
      );
    };
    const plans = await plansOf("s1", "s2", "mig");
    const movedBytes = plans.length * 1024 * BLOCK_BYTES;
    const rawRate = await rawCopy(join(root, "s1", "volumes", "mig"), join(root, "raw-copy"), movedBytes);
    const mover = new ChunkMover({ store, servers: registry, movesPerServerMax: s.moves });
    const started = performance.now();
    await Promise.all(plans.map((plan) => mover.move(plan)));
    const migrateRate = movedBytes / MIB / ((performance.now() - started) / 1000);
    report(`chunk migration, ${formatBytes(movedBytes)} (MB/s)`, migrateRate, "MB/s", rawRate, "raw copy");

    // 3. Foreground latency, idle and during a throttled migration.
    say("latency: idle, then during a migration");
    await createVolume(store, registry, { volumeId: "lat", sizeBytes: 256 * MIB, replicationFactor: 2 });
    const lat = await open("lat");
    const idle = await randomWriteLatencies(lat, s.seconds, 1);
    const back = await plansOf("s2", "s1", "mig");
    const cap = s.bandwidth ?? Math.round(rawRate * 0.6 * MIB);
    const throttled = new ChunkMover({
      store,
      servers: registry,
      bandwidthBytesPerSecond: cap,
      movesPerServerMax: s.moves,
    });
    let busyBytes = 0;
    const migrationStarted = performance.now();
    let migrationEnded = 0;
    const migration = Promise.all(
      back.map((plan) =>
        throttled.move(plan).then(() => {
          busyBytes += 1024 * BLOCK_BYTES;
          migrationEnded = performance.now();
        }),
      ),
    );
    const busy = await randomWriteLatencies(lat, s.seconds, 2);
    const busyWindowEnd = performance.now();
    await migration;
    const busyRate = busyBytes / MIB / (((migrationEnded || busyWindowEnd) - migrationStarted) / 1000);
    report(
      "foreground write p50, migration running (ms)",
      percentile(busy, 50),
      "ms",
      percentile(idle, 50),
      "idle",
    );
    report(
      "foreground write p99, migration running (ms)",
      percentile(busy, 99),
      "ms",
      percentile(idle, 99),
      "idle",
    );
    report(`throttled migration (cap ${formatBytes(cap)}/s) (MB/s)`, busyRate, "MB/s", rawRate, "raw copy");
    console.log(`# goals: migration >= 0.50 of raw copy; p99 during migration <= 2.00 of idle`);
    await lat.close();
    await mig.close();
    await registry.close();
    await store.close();
  } finally {
    for (const child of children) child.kill("SIGTERM");
    await Promise.all(
      children.map(
        (child) =>
          new Promise((resolve) =>
            child.exitCode === null ? child.once("exit", resolve) : resolve(undefined),
          ),
      ),
    );
    await etcd.stop();
    await rm(root, { recursive: true, force: true });
  }
}

await main();
