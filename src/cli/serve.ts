import { type Command, InvalidArgumentError, Option } from "commander";
import { pino } from "pino";
import { type ExportRule, ExportRuleError, parseExportRule } from "../nfs/exports.ts";
import { NfsServer } from "../service/local-server.ts";
import { parseVolumeSize } from "./mkfs.ts";
import { type Output, processOutput } from "./output.ts";
import { runVerb, untilStopSignal } from "./run-verb.ts";

export const DEFAULT_EXPORT = "127.0.0.0/8(rw,root_squash)";
const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

function parsePort(text: string): number {
  const port = Number(text);
  if (!/^\d+$/.test(text) || port > 65535)
    throw new InvalidArgumentError(`"${text}" is not a port (0-65535; 0 picks a free one)`);
  return port;
}

/** "off" stays a string: commander turns a parser's null into "". */
function parsePortOrOff(text: string): number | "off" {
  return text === "off" ? "off" : parsePort(text);
}

function collectExport(text: string, previous: ExportRule[]): ExportRule[] {
  try {
    return [...previous, parseExportRule(text)];
  } catch (error) {
    if (error instanceof ExportRuleError) throw new InvalidArgumentError(error.message);
    throw error;
  }
}

interface ServeOptions {
  readonly data: string;
  readonly listen: string;
  readonly nfsPort: number;
  readonly mountPort: number;
  readonly portmapPort: number | "off";
  readonly size: number;
  readonly export: ExportRule[];
  readonly logLevel: (typeof LOG_LEVELS)[number];
}

/** Serves until SIGINT or SIGTERM, then stops cleanly: in-flight calls finish, the volume commits. */
async function runServe(options: ServeOptions, output: Output): Promise<number> {
  const logger = pino({ name: "flotilla", level: options.logLevel }, pino.destination(2));
  const exports = options.export.length > 0 ? options.export : [parseExportRule(DEFAULT_EXPORT)];
  const server = await NfsServer.start({
    dataDir: options.data,
    listen: options.listen,
    nfsPort: options.nfsPort,
    mountPort: options.mountPort,
    portmapPort: options.portmapPort === "off" ? null : options.portmapPort,
    sizeBytes: options.size,
    exports,
    logger,
  });
  output.line(
    `serving ${options.data} (exports: ${exports.map((e) => `${e.clients}(${e.access},${e.squash})`).join(" ")})`,
  );
  output.line(`libnfs URL: ${server.url}`);
  if (server.portmapPort !== null) output.line(`portmapper on port ${server.portmapPort}`);
  const signal = await untilStopSignal();
  output.line(`${signal}: stopping (finishing calls in flight, committing)`);
  await server.stop();
  output.line("stopped");
  return 0;
}

export function registerServe(program: Command, output: Output = processOutput): void {
  program
    .command("serve")
    .description("serve one vserver's volume over NFSv3 (with MOUNT and a portmapper) on this node")
    .requiredOption(
      "-d, --data <dir>",
      "directory holding the volume and the vserver's keys (made on first start)",
    )
    .option("--listen <addr>", "address to listen on", "127.0.0.1")
    .option("--nfs-port <n>", "NFS port (0 picks a free one)", parsePort, 2049)
    .option("--mount-port <n>", "MOUNT port (0 picks a free one)", parsePort, 20048)
    .option("--portmap-port <n|off>", "portmapper port, or off", parsePortOrOff, 111)
    .option(
      "--size <size>",
      "size of the volume made on first start",
      parseVolumeSize,
      parseVolumeSize("10G"),
    )
    .option(
      "--export <rule>",
      `who may mount, exports(5)-style; repeat for more (default ${DEFAULT_EXPORT})`,
      collectExport,
      [],
    )
    .addOption(
      new Option("--log-level <level>", "log level (logs go to stderr)").choices(LOG_LEVELS).default("info"),
    )
    .addHelpText(
      "after",
      [
        "",
        "Export rules: CLIENTS(OPTIONS) where CLIENTS is a CIDR, an address or *, and OPTIONS are",
        "rw|ro, sync (default)|async, root_squash (default)|all_squash|no_root_squash, anonuid=N,",
        "anongid=N. sync: a CREATE, REMOVE, RENAME, SETATTR... is replied to once it is on stable",
        "storage (in the volume's intent log; calls arriving together share one log write); async:",
        "replied at once, lost by a crash in the next half second.",
        "The most specific matching rule decides; a client no rule matches cannot mount.",
        "",
        "Examples:",
        "  flotilla serve --data /srv/vs1 --nfs-port 0 --mount-port 0 --portmap-port off",
        "  flotilla serve --data /srv/vs1 --listen 0.0.0.0 --export '10.0.0.0/8(rw)' --export '*(ro,all_squash)'",
        "  nfs-ls 'nfs://127.0.0.1/?version=3&nfsport=2049&mountport=20048&auto-traverse-mounts=0'",
      ].join("\n"),
    )
    .action((options: ServeOptions) => runVerb("serve", 1, output, () => runServe(options, output)));
}
