/**
 * Storage administration verbs on the whole tier: `storage status` and `storage drain|undrain
 * SERVER`. Through the admin API by default (so they work against `npm start`), or straight on the
 * coordination store with `--etcd`.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { SingleBar } from "cli-progress";
import { type Command, InvalidArgumentError } from "commander";
import type { DrainJob } from "../api/drain-jobs.ts";
import { ChunkMover } from "../storage/chunk-mover.ts";
import { type DrainProgress, drainServer, undrainServer } from "../storage/drain.ts";
import { readSecretFile } from "../storage/secret-file.ts";
import { ServerRegistry } from "../storage/server-registry.ts";
import { RemoteStorageClient } from "../storage/storage-client.ts";
import { readTierStatus, type TierStatus } from "../storage/tier-status.ts";
import { EtcdStore } from "../store/index.ts";
import { formatBytes } from "../util/size.ts";
import { API_DEFAULT, ApiFailure, type CommonOptions, call, TOKEN_FILE_DEFAULT } from "./api-client.ts";
import { NAMESPACE_DEFAULT, parseEndpoints } from "./cluster-options.ts";
import { type Output, processOutput } from "./output.ts";
import { CliFailure, describeError } from "./run-verb.ts";
import { parseSizeOption } from "./storage.ts";
import { formatTierStatus } from "./storage-status-format.ts";

interface TierOptions {
  /** Absent: through the admin API. */
  readonly etcd?: string[];
  readonly namespace: string;
  readonly api: string;
  readonly tokenFile: string;
}

/** The tier options with etcd given: straight on the store. */
type EtcdTierOptions = TierOptions & { readonly etcd: string[] };

const viaEtcd = (options: TierOptions): options is EtcdTierOptions => options.etcd !== undefined;

const apiOptions = (options: TierOptions): CommonOptions => ({
  api: options.api,
  tokenFile: options.tokenFile,
  json: false,
});

function parseCount(text: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < 1 || value > 64)
    throw new InvalidArgumentError(`"${text}" is not a count from 1 to 64`);
  return value;
}

/** The options every tier verb takes: the admin API by default, or etcd. */
export function addTierOptions(command: Command): Command {
  return command
    .option("--api <url>", "the admin API (env FLOTILLA_API)", API_DEFAULT)
    .option("--token-file <file>", "the admin token (env FLOTILLA_TOKEN_FILE)", TOKEN_FILE_DEFAULT)
    .option(
      "--etcd <urls>",
      "work straight on etcd instead of the admin API: its endpoints, comma-separated (e.g. http://127.0.0.1:2379)",
      parseEndpoints,
    )
    .option("--namespace <prefix>", "with --etcd: key prefix of this cluster in etcd", NAMESPACE_DEFAULT);
}

async function withTier<T>(
  options: EtcdTierOptions,
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

type StatusReport = TierStatus & { readonly drains?: readonly DrainJob[] };

export async function storageStatus(options: TierOptions): Promise<StatusReport> {
  if (viaEtcd(options))
    return withTier(options, undefined, ({ store, registry }) => readTierStatus(store, registry));
  return (await call(apiOptions(options), "GET", "/v1/storage")) as StatusReport;
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
  readonly secretFile?: string;
  readonly bandwidth: number;
  readonly movesPerServer: number;
}

/** How often a drain through the API looks at its progress. */
const DRAIN_POLL_MS = 500;

async function runDrain(serverId: string, options: DrainCliOptions, output: Output): Promise<number> {
  if (!viaEtcd(options)) return runDrainThroughApi(serverId, options, output);
  const secretFile = options.secretFile;
  if (secretFile === undefined)
    throw new CliFailure("with --etcd, the drain talks to the storage servers itself: give --secret-file");
  return withTier(options, secretFile, async ({ store, registry }) => {
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

/** Starts the drain in the API's process and follows it there until it ends. */
async function runDrainThroughApi(serverId: string, options: TierOptions, output: Output): Promise<number> {
  const api = apiOptions(options);
  await call(api, "POST", `/v1/storage/servers/${encodeURIComponent(serverId)}/drain`);
  const reporter = drainReporter(serverId, output);
  try {
    for (;;) {
      const report = (await call(api, "GET", "/v1/storage")) as StatusReport;
      const job = report.drains?.find((d) => d.serverId === serverId);
      if (job === undefined) throw new CliFailure(`the API lost track of the drain of ${serverId}`);
      reporter.update(job.progress);
      if (job.state === "failed") throw new CliFailure(job.error ?? "the drain failed");
      if (job.state === "done") {
        reporter.stop();
        output.line(
          `drained ${serverId}: ${job.progress.chunksDone} chunks, ${formatBytes(job.progress.bytesTotal)} moved; it holds no chunk now`,
        );
        return 0;
      }
      await sleep(DRAIN_POLL_MS);
    }
  } finally {
    reporter.stop();
  }
}

/** A failure of a tier verb: an API failure keeps its exit code, anything else is 1. */
async function runTierVerb(verb: string, output: Output, body: () => Promise<number>): Promise<void> {
  try {
    process.exitCode = await body();
  } catch (error) {
    output.error(`${verb}: ${describeError(error)}`);
    process.exitCode = error instanceof ApiFailure ? error.exitCode : 1;
  }
}

const TIER_HELP = [
  "",
  "Through the admin API (--api, --token-file: what `npm start` prints) unless --etcd is given.",
].join("\n");

export function registerStorageAdmin(storage: Command, output: Output = processOutput): void {
  addTierOptions(
    storage
      .command("status")
      .description(
        "storage servers (alive, draining, dead) with their load (the measure, HOT, requests, bytes, p99, CPU, network), volumes (replication health), chunk moves and drains in progress",
      )
      .option("--json", "print JSON for scripts", false)
      .addHelpText(
        "after",
        `${TIER_HELP}\nExit status: 0; 3 some chunk has no live copy; others as the admin verbs.\n\nExample:\n  flotilla storage status`,
      ),
  ).action((options: TierOptions & { json: boolean }) =>
    runTierVerb("storage status", output, async () => {
      const report = await storageStatus(options);
      output.line(options.json ? JSON.stringify(report, null, 2) : formatTierStatus(report));
      return report.volumes.some((v) => v.unavailable > 0) ? 3 : 0;
    }),
  );
  addTierOptions(
    storage
      .command("drain")
      .description("move every chunk off a storage server (it takes no new chunks until undrained)")
      .argument("<server>", "the storage server id")
      .option("--secret-file <file>", "with --etcd: the cluster secret (the drain talks to the servers)")
      .option(
        "--bandwidth <size>",
        "with --etcd: copy rate cap per second, e.g. 100M (0: none)",
        parseSizeOption,
        200 * 1024 * 1024,
      )
      .option(
        "--moves-per-server <n>",
        "with --etcd: chunk moves one server takes part in at once",
        parseCount,
        2,
      )
      .addHelpText(
        "after",
        [
          TIER_HELP,
          "Through the API the drain runs in the API's process; interrupting this command does not stop it",
          "(`storage status` shows it). Shows a progress bar on a terminal (chunks, bytes, rate, ETA), one",
          "line per chunk elsewhere.",
          "Exit status: 0 drained; 1 it could not finish (the reason is printed: no room elsewhere,",
          "a server unreachable, ...). Run it again to finish: chunks already moved stay moved.",
          "",
          "Examples:",
          "  flotilla storage drain s2",
          "  flotilla storage drain s2 --etcd http://127.0.0.1:2379 --secret-file /etc/flotilla/secret",
        ].join("\n"),
      ),
  ).action((serverId: string, options: DrainCliOptions) =>
    runTierVerb("storage drain", output, () => runDrain(serverId, options, output)),
  );
  addTierOptions(
    storage
      .command("undrain")
      .description("let a drained storage server take new chunks again")
      .argument("<server>", "the storage server id")
      .addHelpText("after", `${TIER_HELP}\n\nExample:\n  flotilla storage undrain s2`),
  ).action((serverId: string, options: TierOptions) =>
    runTierVerb("storage undrain", output, async () => {
      if (viaEtcd(options)) await withTier(options, undefined, ({ store }) => undrainServer(store, serverId));
      else
        await call(
          apiOptions(options),
          "POST",
          `/v1/storage/servers/${encodeURIComponent(serverId)}/undrain`,
        );
      output.line(`${serverId} takes new chunks again`);
      return 0;
    }),
  );
}
