/**
 * Storage administration verbs that work on the whole tier through the coordination store (etcd):
 * `storage status` and `storage drain|undrain SERVER`.
 */
import { SingleBar } from "cli-progress";
import { type Command, InvalidArgumentError } from "commander";
import {
  allocatedFromCensus,
  missingServers,
  takeCensus,
  type VolumeHealth,
  volumeHealth,
} from "../storage/chunk-census.ts";
import { ChunkMover } from "../storage/chunk-mover.ts";
import { type DrainProgress, drainServer, undrainServer } from "../storage/drain.ts";
import { readSecretFile } from "../storage/secret-file.ts";
import { ServerRegistry } from "../storage/server-registry.ts";
import { RemoteStorageClient } from "../storage/storage-client.ts";
import { EtcdStore } from "../store/index.ts";
import { formatBytes } from "../util/size.ts";
import { NAMESPACE_DEFAULT, parseEndpoints } from "./cluster-options.ts";
import { type Output, processOutput } from "./output.ts";
import { runVerb } from "./run-verb.ts";
import { parseSizeOption } from "./storage.ts";

interface TierOptions {
  readonly etcd: string[];
  readonly namespace: string;
}

function parseCount(text: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < 1 || value > 64)
    throw new InvalidArgumentError(`"${text}" is not a count from 1 to 64`);
  return value;
}

/** The etcd options every tier verb takes. */
export function addTierOptions(command: Command): Command {
  return command
    .requiredOption(
      "--etcd <urls>",
      "etcd endpoints, comma-separated (e.g. http://127.0.0.1:2379)",
      parseEndpoints,
    )
    .option("--namespace <prefix>", "key prefix of this cluster in etcd", NAMESPACE_DEFAULT);
}

async function withTier<T>(
  options: TierOptions,
  secretFile: string | undefined,
  body: (tier: { store: EtcdStore; registry: ServerRegistry }) => Promise<T>,
): Promise<T> {
  const secret = secretFile === undefined ? undefined : await readSecretFile(secretFile);
  const store = await EtcdStore.connect({ endpoints: options.etcd, namespace: options.namespace });
  try {
    const registry = await ServerRegistry.open(store, (record) => {
      if (secret === undefined) throw new Error("this verb talks to storage servers: give --secret-file");
      return new RemoteStorageClient({
        serverId: record.serverId,
        host: record.host,
        port: record.port,
        secret,
      });
    });
    try {
      return await body({ store, registry });
    } finally {
      await registry.close();
    }
  } finally {
    await store.close();
  }
}

interface StatusReport {
  servers: {
    serverId: string;
    state: "alive" | "draining" | "dead" | "missing";
    address: string | null;
    capacityBytes: number | null;
    allocatedBytes: number;
    chunks: number;
  }[];
  volumes: VolumeHealth[];
}

export async function storageStatus(options: TierOptions): Promise<StatusReport> {
  return withTier(options, undefined, async ({ store, registry }) => {
    const census = await takeCensus(store);
    const allocated = allocatedFromCensus(census);
    const chunkCounts = new Map<string, number>();
    for (const entry of census.chunks) {
      for (const r of entry.route.replicas)
        chunkCounts.set(r.serverId, (chunkCounts.get(r.serverId) ?? 0) + 1);
    }
    const ids = new Set([
      ...registry.servers().map((s) => s.serverId),
      ...chunkCounts.keys(),
      ...census.dead,
    ]);
    const servers = [...ids].sort().map((serverId) => {
      const record = registry.servers().find((s) => s.serverId === serverId);
      const state: StatusReport["servers"][number]["state"] = census.dead.has(serverId)
        ? "dead"
        : record === undefined
          ? "missing"
          : census.draining.has(serverId)
            ? "draining"
            : "alive";
      return {
        serverId,
        state,
        address: record === undefined ? null : `${record.host}:${record.port}`,
        capacityBytes: record?.capacityBytes ?? null,
        allocatedBytes: allocated.get(serverId) ?? 0,
        chunks: chunkCounts.get(serverId) ?? 0,
      };
    });
    const volumes = volumeHealth(
      census,
      missingServers(census, (id) => registry.isAlive(id)),
    );
    return { servers, volumes };
  });
}

function printStatus(report: StatusReport, output: Output): void {
  output.line("storage servers:");
  if (report.servers.length === 0) output.line("  (none registered)");
  for (const s of report.servers) {
    const capacity = s.capacityBytes === null ? "?" : formatBytes(s.capacityBytes);
    output.line(
      `  ${s.serverId.padEnd(12)} ${s.state.padEnd(9)} ${(s.address ?? "-").padEnd(22)} ` +
        `${formatBytes(s.allocatedBytes)} of ${capacity} placed, ${s.chunks} chunks`,
    );
  }
  output.line("volumes:");
  if (report.volumes.length === 0) output.line("  (none)");
  for (const v of report.volumes) {
    const health =
      v.unavailable > 0
        ? `${v.unavailable} chunks UNAVAILABLE (no live copy)`
        : v.underReplicated > 0
          ? `${v.underReplicated} chunks under-replicated (re-replicating)`
          : "healthy";
    const moving = v.moving > 0 ? `, ${v.moving} moving` : "";
    output.line(
      `  ${v.volumeId.padEnd(12)} ${formatBytes(v.sizeBytes).padEnd(10)} RF=${v.replicationFactor} ${v.chunks} chunks: ${health}${moving}`,
    );
  }
}

/** A bar on a terminal; elsewhere one line per finished chunk. */
function drainReporter(serverId: string, output: Output): { update(p: DrainProgress): void; stop(): void } {
  const started = performance.now();
  const rateOf = (bytes: number): number => bytes / Math.max(0.001, (performance.now() - started) / 1000);
  if (!process.stderr.isTTY) {
    let lastDone = -1;
    return {
      update(p) {
        if (p.chunksDone === lastDone) return; // one line per finished chunk
        lastDone = p.chunksDone;
        output.error(
          `drain ${serverId}: ${p.chunksDone}/${p.chunksTotal} chunks, ${formatBytes(p.bytesDone)} of ` +
            `${formatBytes(p.bytesTotal)}, ${formatBytes(rateOf(p.bytesDone))}/s`,
        );
      },
      stop() {},
    };
  }
  const bar = new SingleBar({
    format: `drain ${serverId} [{bar}] {percentage}% | {chunks} chunks | {bytes} | {rate}/s | ETA {eta_formatted}`,
    stream: process.stderr,
    hideCursor: true,
    etaBuffer: 20,
  });
  let startedBar = false;
  return {
    update(p) {
      const payload = {
        chunks: `${p.chunksDone}/${p.chunksTotal}`,
        bytes: `${formatBytes(p.bytesDone)} of ${formatBytes(p.bytesTotal)}`,
        rate: formatBytes(rateOf(p.bytesDone)),
      };
      if (!startedBar) {
        bar.start(Math.max(1, p.bytesTotal), p.bytesDone, payload);
        startedBar = true;
      } else bar.update(p.bytesDone, payload);
    },
    stop() {
      if (startedBar) bar.stop();
    },
  };
}

interface DrainCliOptions extends TierOptions {
  readonly secretFile: string;
  readonly bandwidth: number;
  readonly movesPerServer: number;
}

async function runDrain(serverId: string, options: DrainCliOptions, output: Output): Promise<number> {
  return withTier(options, options.secretFile, async ({ store, registry }) => {
    let moved = 0;
    const mover = new ChunkMover({
      store,
      servers: registry,
      bandwidthBytesPerSecond: options.bandwidth,
      movesPerServerMax: options.movesPerServer,
      onProgress: ({ bytes }) => {
        moved += bytes;
      },
    });
    const reporter = drainReporter(serverId, output);
    // drainServer reports per finished chunk; the bar also moves with the bytes of chunks in flight.
    let last: DrainProgress | undefined;
    const ticker = setInterval(() => {
      if (last !== undefined) reporter.update({ ...last, bytesDone: Math.min(last.bytesTotal, moved) });
    }, 250);
    try {
      const result = await drainServer(
        {
          store,
          registry,
          mover,
          onProgress: (p) => {
            last = p;
            reporter.update(p);
          },
          bytesMoved: () => moved,
        },
        serverId,
      );
      reporter.stop();
      output.line(
        `drained ${serverId}: ${result.chunksDone} chunks, ${formatBytes(result.bytesTotal)} moved; it holds no chunk now`,
      );
      return 0;
    } finally {
      reporter.stop();
      clearInterval(ticker);
    }
  });
}

export function registerStorageAdmin(storage: Command, output: Output = processOutput): void {
  addTierOptions(
    storage
      .command("status")
      .description("storage servers (alive, draining, dead) and volumes (replication health, moves)")
      .option("--json", "print JSON for scripts", false),
  ).action((options: TierOptions & { json: boolean }) =>
    runVerb("storage status", 1, output, async () => {
      const report = await storageStatus(options);
      if (options.json) output.line(JSON.stringify(report, null, 2));
      else printStatus(report, output);
      return report.volumes.some((v) => v.unavailable > 0) ? 3 : 0;
    }),
  );
  addTierOptions(
    storage
      .command("drain")
      .description("move every chunk off a storage server (it takes no new chunks until undrained)")
      .argument("<server>", "the storage server id")
      .requiredOption("--secret-file <file>", "the cluster secret")
      .option(
        "--bandwidth <size>",
        "copy rate cap per second, e.g. 100M (0: none)",
        parseSizeOption,
        200 * 1024 * 1024,
      )
      .option("--moves-per-server <n>", "chunk moves one server takes part in at once", parseCount, 2)
      .addHelpText(
        "after",
        [
          "",
          "Shows a progress bar on a terminal (chunks, bytes, rate, ETA), one line per chunk elsewhere.",
          "Exit status: 0 drained; 1 it could not finish (the reason is printed: no room elsewhere,",
          "a server unreachable, ...). Run it again to finish: chunks already moved stay moved.",
          "",
          "Example:",
          "  flotilla storage drain s2 --etcd http://127.0.0.1:2379 --secret-file /etc/flotilla/secret",
        ].join("\n"),
      ),
  ).action((serverId: string, options: DrainCliOptions) =>
    runVerb("storage drain", 1, output, () => runDrain(serverId, options, output)),
  );
  addTierOptions(
    storage
      .command("undrain")
      .description("let a drained storage server take new chunks again")
      .argument("<server>", "the storage server id"),
  ).action((serverId: string, options: TierOptions) =>
    runVerb("storage undrain", 1, output, async () =>
      withTier(options, undefined, async ({ store }) => {
        await undrainServer(store, serverId);
        output.line(`${serverId} takes new chunks again`);
        return 0;
      }),
    ),
  );
}
