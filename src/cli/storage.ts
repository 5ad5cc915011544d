import { mkdir, statfs } from "node:fs/promises";
import { type Command, InvalidArgumentError, Option } from "commander";
import { pino } from "pino";
import { ownerEpochs, STORAGE_LEASE_TTL_MS_DEFAULT, StorageMembership } from "../storage/membership.ts";
import { readSecretFile, writeSecretFile } from "../storage/secret-file.ts";
import { ServerRegistry } from "../storage/server-registry.ts";
import { StorageServer } from "../storage/storage-server.ts";
import { SERVER_ID_PATTERN, type ServerDirectory } from "../storage/types.ts";
import { EtcdStore } from "../store/index.ts";
import { formatBytes, parseSize } from "../util/size.ts";
import { NAMESPACE_DEFAULT, parseEndpoints, parseMilliseconds } from "./cluster-options.ts";
import { type Output, processOutput } from "./output.ts";
import { CliFailure, runVerb, untilStopSignal } from "./run-verb.ts";

export const STORAGE_PORT_DEFAULT = 7411;
const LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

interface Address {
  readonly host: string;
  readonly port: number;
}

function portOf(text: string, zeroAllowed: boolean): number {
  const port = Number(text);
  if (!/^\d{1,5}$/.test(text) || port > 65535 || (port === 0 && !zeroAllowed)) {
    throw new InvalidArgumentError(`"${text}" is not a port (${zeroAllowed ? 0 : 1}-65535)`);
  }
  return port;
}

function parseServerId(text: string): string {
  if (!SERVER_ID_PATTERN.test(text)) {
    throw new InvalidArgumentError(`"${text}" is not a server id (lowercase letters, digits, - and _; 1-63)`);
  }
  return text;
}

/** A size option (512M, 10G): a usage error quoting the text when it is not one. */
export function parseSizeOption(text: string): number {
  try {
    return parseSize(text);
  } catch (error) {
    throw new InvalidArgumentError(error instanceof Error ? error.message : String(error));
  }
}

/** ID=HOST:PORT, HOST an IPv4 address, a name, or an IPv6 address in brackets. */
export function parsePeer(text: string): [string, Address] {
  const match = /^([^=]+)=(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d+)$/.exec(text);
  if (match === null) throw new InvalidArgumentError(`"${text}" is not ID=HOST:PORT (IPv6 as [ADDR]:PORT)`);
  const host = match[2] ?? match[3] ?? "";
  return [parseServerId(match[1] ?? ""), { host, port: portOf(match[4] ?? "", false) }];
}

function collectPeer(text: string, previous: Map<string, Address>): Map<string, Address> {
  const [serverId, address] = parsePeer(text);
  if (previous.has(serverId)) throw new InvalidArgumentError(`peer ${serverId} is given twice`);
  return new Map([...previous, [serverId, address]]);
}

interface ServeOptions {
  readonly data: string;
  readonly id: string;
  readonly secretFile: string;
  readonly host: string;
  readonly port: number;
  readonly capacity: number | undefined;
  readonly peer: Map<string, Address>;
  readonly logLevel: (typeof LEVELS)[number];
  readonly etcd: string[] | undefined;
  readonly namespace: string;
  readonly leaseTtl: number;
}

/** Serves until SIGINT or SIGTERM, then stops cleanly: requests in flight finish, files are synced. */
async function runStorageServe(options: ServeOptions, output: Output): Promise<number> {
  if (options.peer.has(options.id)) throw new CliFailure(`--peer ${options.id} names this server itself`);
  const secret = await readSecretFile(options.secretFile);
  await mkdir(options.data, { recursive: true });
  const capacityBytes = options.capacity ?? (await fileSystemBytes(options.data));
  const logger = pino({ name: "flotilla", level: options.logLevel }, pino.destination(2));
  // In a cluster (--etcd) the server learns every owner epoch before it listens, finds its peers in the
  // registry, and registers itself under a lease; alone, its peers are the --peer list.
  const store =
    options.etcd === undefined
      ? undefined
      : await EtcdStore.connect({ endpoints: options.etcd, namespace: options.namespace });
  const registry =
    store === undefined ? undefined : await ServerRegistry.openWithSecret(store, secret, logger);
  const directory: ServerDirectory = {
    addressOf: (serverId) => options.peer.get(serverId) ?? registry?.addressOf(serverId),
  };
  const server = await StorageServer.start({
    serverId: options.id,
    dataDir: options.data,
    host: options.host,
    port: options.port,
    secret,
    capacityBytes,
    directory,
    logger,
    ...(store === undefined ? {} : { ownerEpochs: (await ownerEpochs(store)).epochs }),
  });
  const membership =
    store === undefined
      ? undefined
      : await StorageMembership.join(server, { store, leaseTtlMs: options.leaseTtl, logger });
  const where = server.host.includes(":")
    ? `[${server.host}]:${server.port}`
    : `${server.host}:${server.port}`;
  output.line(
    `storage server ${options.id} listening on ${where} (data ${options.data}, capacity ${formatBytes(capacityBytes)}, peers: ${[...options.peer.keys()].join(" ") || "none"})`,
  );
  const signal = await untilStopSignal();
  output.line(`${signal}: stopping (finishing requests in flight, syncing chunk files)`);
  // Leave the registry first, so filers stop sending before the server stops answering.
  await membership?.close();
  await server.stop();
  await registry?.close();
  await store?.close();
  output.line("stopped");
  return 0;
}

async function fileSystemBytes(dir: string): Promise<number> {
  const fs = await statfs(dir);
  return fs.blocks * fs.bsize;
}

/** Adds `storage serve` and `storage secret`; returns the `storage` command, for more verbs under it. */
export function registerStorage(program: Command, output: Output = processOutput): Command {
  const storage = program
    .command("storage")
    .description("storage servers: hold the chunks of replicated volumes")
    .addHelpText(
      "after",
      "\nExample:\n  flotilla storage secret --out /etc/flotilla/secret && flotilla storage serve --help",
    );
  storage
    .command("serve")
    .description("run a storage server: chunks of volumes in a directory, served over the storage protocol")
    .requiredOption("-d, --data <dir>", "directory holding the chunks and owner epochs (made on first start)")
    .requiredOption("--id <id>", "this server's id, unique in the cluster (e.g. s1)", parseServerId)
    .requiredOption("--secret-file <file>", "the cluster secret (from `flotilla storage secret`), mode 0600")
    .option("--host <addr>", "address to listen on", "127.0.0.1")
    .option(
      "--port <n>",
      "port to listen on (0 picks a free one)",
      (text) => portOf(text, true),
      STORAGE_PORT_DEFAULT,
    )
    .option(
      "--capacity <size>",
      "space offered to the cluster, e.g. 500G (default: the file system's size)",
      parseSizeOption,
    )
    .addOption(
      new Option(
        "--peer <id=host:port>",
        "another storage server (a source of chunk copies); repeat for more",
      )
        .argParser(collectPeer)
        .default(new Map(), "none"),
    )
    .option(
      "--etcd <urls>",
      "join a cluster: etcd endpoints, comma-separated (e.g. http://127.0.0.1:2379)",
      parseEndpoints,
    )
    .option("--namespace <prefix>", "key prefix of the cluster in etcd", NAMESPACE_DEFAULT)
    .option(
      "--lease-ttl <ms>",
      "with --etcd: the server counts as dead this long after it stops renewing",
      parseMilliseconds,
      STORAGE_LEASE_TTL_MS_DEFAULT,
    )
    .addOption(
      new Option("--log-level <level>", "log level (logs go to stderr)").choices(LEVELS).default("info"),
    )
    .addHelpText(
      "after",
      [
        "",
        "Prints one line once listening: storage server ID listening on HOST:PORT (...).",
        "With --etcd it registers itself (peers are found there) and learns volumes' owner epochs.",
        "SIGINT or SIGTERM: finish the requests in flight, sync every chunk file, exit 0.",
        "",
        "Example (two servers on one machine):",
        "  flotilla storage secret --out /srv/secret",
        "  flotilla storage serve --data /srv/s1 --id s1 --secret-file /srv/secret --port 7411 --peer s2=127.0.0.1:7412",
        "  flotilla storage serve --data /srv/s2 --id s2 --secret-file /srv/secret --port 7412 --peer s1=127.0.0.1:7411",
        "In a cluster:",
        "  flotilla storage serve --data /srv/s1 --id s1 --secret-file /srv/secret --etcd http://127.0.0.1:2379",
      ].join("\n"),
    )
    .action((options: ServeOptions) =>
      runVerb("storage serve", 1, output, () => runStorageServe(options, output)),
    );
  storage
    .command("secret")
    .description("make a new cluster secret: 32 random bytes, as hexadecimal, in a file of mode 0600")
    .requiredOption("-o, --out <file>", "where to write it")
    .option("-f, --force", "replace the file if it exists", false)
    .addHelpText(
      "after",
      "\nCopy the same file to every storage server and filer of the cluster.\n\nExample:\n  flotilla storage secret --out /etc/flotilla/secret",
    )
    .action((options: { out: string; force: boolean }) =>
      runVerb("storage secret", 1, output, async () => {
        await writeSecretFile(options.out, options.force);
        output.line(`wrote a new cluster secret to ${options.out} (mode 0600)`);
        return 0;
      }),
    );
  return storage;
}
