/**
 * `flotilla node --config FILE`: one cluster node in its own process, joined through etcd (the
 * embedded store cannot span processes). The config file is JSON, parsed and checked before anything
 * starts, so a typo is an error naming the field, not a node that half starts.
 */

import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Command } from "commander";
import { pino } from "pino";
import { z } from "zod";
import { ADMIN_PORT_DEFAULT, AdminServer } from "../api/admin-server.ts";
import { NfsMetrics } from "../api/nfs-metrics.ts";
import { ID_PATTERN } from "../cluster/catalog.ts";
import {
  NODE_LEASE_TTL_MS_DEFAULT,
  NodeRuntime,
  VSERVERS_PER_NODE_DEFAULT,
} from "../cluster/node-runtime.ts";
import { parseSubnet } from "../net/cidr.ts";
import { PORT_BALANCE_DEFAULT } from "../net/port-balance.ts";
import { BALANCE_POLICY_DEFAULT } from "../storage/balance-plan.ts";
import { BALANCE_INTERVAL_MS_DEFAULT } from "../storage/balancer.ts";
import { readSecretFile } from "../storage/secret-file.ts";
import { EtcdStore } from "../store/index.ts";
import { parseSize } from "../util/size.ts";
import { NAMESPACE_DEFAULT } from "./cluster-options.ts";
import { type Output, processOutput } from "./output.ts";
import { CliFailure, runVerb, untilStopSignal } from "./run-verb.ts";

const durationMs = z.number().int().min(100).max(3_600_000);

/**
 * A node's storage server dies with the node: writes to the chunks it held wait until it is declared
 * dead, so a node's defaults are short (a standalone `flotilla storage serve` keeps 3 s + 10 s): its
 * lease is the whole detection, with no grace after it. The price: a storage server that stays away
 * longer than its lease (a restart) has its chunks re-replicated. etcd renews leases across its own
 * leader changes and restarts, so an etcd hiccup does not expire them all at once.
 */
const NODE_STORAGE_LEASE_TTL_MS_DEFAULT = 1000;
const NODE_STORAGE_GRACE_MS_DEFAULT = 0;

export const nodeConfigSchema = z
  .object({
    nodeId: z.string().regex(ID_PATTERN, "1 to 63 of a-z, 0-9, - and _"),
    roles: z
      .array(z.enum(["filer", "storage"]))
      .min(1)
      .max(2)
      .default(["filer", "storage"]),
    etcd: z.array(z.string().regex(/^https?:\/\/[^/\s]+$/, "http://HOST:PORT")).min(1),
    namespace: z.string().max(255).default(NAMESPACE_DEFAULT),
    secretFile: z.string().min(1),
    dataDir: z.string().min(1),
    storage: z
      .object({
        host: z.string().default("127.0.0.1"),
        port: z.number().int().min(0).max(65535).default(0),
        capacity: z.string().optional(),
      })
      .strict()
      .default({ host: "127.0.0.1", port: 0 }),
    leaseTtlMs: durationMs.default(NODE_LEASE_TTL_MS_DEFAULT),
    storageLeaseTtlMs: durationMs.default(NODE_STORAGE_LEASE_TTL_MS_DEFAULT),
    storageGraceMs: z.number().int().min(0).max(3_600_000).default(NODE_STORAGE_GRACE_MS_DEFAULT),
    vserversMax: z.number().int().min(0).max(100_000).default(VSERVERS_PER_NODE_DEFAULT),
    nodeSettleMs: z.number().int().min(0).max(3_600_000).default(30_000),
    moveCooldownMs: z.number().int().min(0).max(3_600_000).default(30_000),
    logLevel: z.enum(["fatal", "error", "warn", "info", "debug", "trace"]).default("info"),
    /** Live moves of vservers' service state (vserver move --live). */
    liveMove: z
      .object({
        /** The address other nodes send moved state to (a free port is picked). */
        host: z.string().default("127.0.0.1"),
        /** Pages (64 KiB) for all vservers' service state on this node. */
        statePages: z
          .number()
          .int()
          .min(1)
          .max(1 << 20)
          .optional(),
        /** Bytes per second the pre-copy may use (0: no limit); the final copy is never limited. */
        precopyBytesPerSec: z.number().int().min(0).default(0),
      })
      .strict()
      .default({ host: "127.0.0.1", precopyBytesPerSec: 0 }),
    /** The storage balancer, run by the master (see src/storage/balance-plan.ts). */
    storageBalance: z
      .object({
        auto: z.boolean().default(true),
        /** Moves start when the hottest server carries more than this times the mean load... */
        startRatio: z.number().min(1).max(10).default(BALANCE_POLICY_DEFAULT.startRatio),
        /** ...and go on until it carries at most this. */
        stopRatio: z.number().min(1).max(10).default(BALANCE_POLICY_DEFAULT.stopRatio),
        inFlightMax: z.number().int().min(1).max(64).default(BALANCE_POLICY_DEFAULT.inFlightMax),
        /** A server fuller than this share of its capacity sheds chunks. */
        fullShare: z.number().gt(0).max(1).default(BALANCE_POLICY_DEFAULT.fullShare),
        intervalMs: durationMs.default(BALANCE_INTERVAL_MS_DEFAULT),
      })
      .strict()
      .refine((b) => b.stopRatio <= b.startRatio, "storageBalance.stopRatio must not exceed startRatio")
      .default({ ...BALANCE_POLICY_DEFAULT, auto: true, intervalMs: BALANCE_INTERVAL_MS_DEFAULT }),
    /**
     * Where VIPs live: "loopback" (VIPs in 127.0.0.0/8, nothing to configure) or "linux" (addresses
     * on the listed ports, announced by gratuitous ARP; a port's subnet is the client subnet it is
     * cabled to, null for a storage or cluster port).
     */
    network: z
      .object({
        driver: z.enum(["loopback", "linux"]).default("loopback"),
        /** Tickle ACKs to the previous holder's clients when VIPs arrive (needs gcc once, to build). */
        tickle: z.boolean().default(true),
        /** VIPs spread over the node's ports of a subnet by measured load (see net/port-balance.ts). */
        portBalance: z
          .union([
            z.literal(false),
            z
              .object({
                startRatio: z.number().min(1.05).max(10).default(PORT_BALANCE_DEFAULT.startRatio),
                stopRatio: z.number().min(1).max(10).default(PORT_BALANCE_DEFAULT.stopRatio),
                movesMax: z.number().int().min(1).max(64).default(PORT_BALANCE_DEFAULT.movesMax),
                floorBytesPerSec: z.number().int().min(0).default(PORT_BALANCE_DEFAULT.floorBytesPerSec),
              })
              .strict()
              .refine((p) => p.stopRatio < p.startRatio, "portBalance: stopRatio must be below startRatio"),
          ])
          .default({ ...PORT_BALANCE_DEFAULT }),
        ports: z
          .array(
            z
              .object({
                name: z.string().regex(/^[A-Za-z0-9_.-]{1,15}$/, "an interface name (at most 15 characters)"),
                subnet: z
                  .string()
                  .refine((text) => isSubnet(text), "a subnet like 10.7.1.0/24")
                  .nullable(),
                /** Addresses on the port's subnet to ARP-probe beside the other nodes (a gateway). */
                probes: z.array(z.ipv4()).max(8).default([]),
              })
              .strict(),
          )
          .max(64)
          .default([]),
      })
      .strict()
      .refine((n) => n.driver === "loopback" || n.ports.some((p) => p.subnet !== null), {
        message:
          'network: the linux driver needs at least one port with a subnet, e.g. {"name":"eth0","subnet":"10.7.1.0/24"}',
      })
      .default({ driver: "loopback", tickle: true, portBalance: { ...PORT_BALANCE_DEFAULT }, ports: [] }),
    /** The admin API on this node (any node can answer it: it works on the shared store). */
    admin: z
      .object({
        host: z.string().default("127.0.0.1"),
        port: z.number().int().min(0).max(65535).default(ADMIN_PORT_DEFAULT),
      })
      .strict()
      .optional(),
  })
  .strict();
export type NodeConfig = z.infer<typeof nodeConfigSchema>;

const GiB = 1024 * 1024 * 1024;

function isSubnet(text: string): boolean {
  try {
    parseSubnet(text);
    return true;
  } catch {
    return false;
  }
}

export async function readNodeConfig(path: string): Promise<NodeConfig> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path, "utf8"));
  } catch (error) {
    throw new CliFailure(`${path}: ${error instanceof Error ? error.message : String(error)}`);
  }
  const parsed = nodeConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map(
      (issue) => `${issue.path.join(".") || "(top)"}: ${issue.message}`,
    );
    throw new CliFailure(`${path}: ${problems.join("; ")}`);
  }
  return parsed.data;
}

async function runNode(configPath: string, output: Output): Promise<number> {
  const config = await readNodeConfig(configPath);
  const secret = await readSecretFile(config.secretFile);
  const logger = pino({ name: "flotilla", level: config.logLevel }, pino.destination(2));
  const store = await EtcdStore.connect({ endpoints: config.etcd, namespace: config.namespace });
  const nfsMetrics = new NfsMetrics();
  const node = await NodeRuntime.start({
    store,
    nfsMetrics: nfsMetrics.forVserver,
    nodeId: config.nodeId,
    roles: config.roles,
    secret,
    storage: {
      dataDir: join(config.dataDir, "storage"),
      host: config.storage.host,
      port: config.storage.port,
      capacityBytes: config.storage.capacity === undefined ? 64 * GiB : parseSize(config.storage.capacity),
      leaseTtlMs: config.storageLeaseTtlMs,
    },
    leaseTtlMs: config.leaseTtlMs,
    vserversMax: config.vserversMax,
    storageGraceMs: config.storageGraceMs,
    policy: { nodeSettleMs: config.nodeSettleMs, moveCooldownMs: config.moveCooldownMs },
    moveHost: config.liveMove.host,
    network: config.network,
    storageBalance: config.storageBalance,
    precopyBytesPerSec: config.liveMove.precopyBytesPerSec,
    ...(config.liveMove.statePages === undefined ? {} : { statePagesMax: config.liveMove.statePages }),
    logger,
  }).catch(async (error: unknown) => {
    await store.close();
    throw error;
  });

  let admin: AdminServer | undefined;
  try {
    admin =
      config.admin === undefined
        ? undefined
        : await AdminServer.start({
            store,
            registry: node.registry,
            host: config.admin.host,
            port: config.admin.port,
            tokenFile: join(config.dataDir, "admin-token"),
            logger,
            nfsMetrics,
          });
  } catch (error) {
    // Nothing may stay running behind a failed start: the process must exit.
    await node.stop();
    await store.close();
    throw error;
  }
  if (admin !== undefined) {
    output.line(`admin API on ${admin.url} (token in ${join(config.dataDir, "admin-token")})`);
    output.line(`dashboard on ${admin.url}/ui (log in with that token)`);
  }
  output.line(
    `node ${config.nodeId} up (roles ${config.roles.join(",")}, etcd ${config.etcd.join(",")}, lease ${config.leaseTtlMs} ms)`,
  );
  const signal = await untilStopSignal();
  output.line(`${signal}: stopping (vservers committed and unmounted, then the lease given up)`);
  await admin?.close();
  await node.stop();
  await store.close();
  output.line("stopped");
  return 0;
}

export function registerNode(program: Command, output: Output = processOutput): void {
  program
    .command("node")
    .description(
      "run one cluster node in this process, joined through etcd (or: node drain|disable|enable NODE)",
    )
    .option("-c, --config <file>", "the node's JSON config (see below)")
    .addHelpText(
      "after",
      [
        "",
        "Config (JSON; defaults in brackets):",
        '  nodeId          "n1": unique in the cluster',
        '  roles           ["filer","storage"]: filer serves vservers, storage keeps chunks',
        '  etcd            ["http://127.0.0.1:2379"]: etcd endpoints',
        `  namespace       [${NAMESPACE_DEFAULT}]: the cluster's key prefix in etcd`,
        "  secretFile      the cluster secret (flotilla storage secret --out FILE)",
        "  dataDir         this node's data (its chunk store under storage/)",
        '  storage         {"host": "127.0.0.1", "port": 0, "capacity": "64G"}',
        `  leaseTtlMs      [${NODE_LEASE_TTL_MS_DEFAULT}] a node silent this long is dead; etcd rounds up to whole seconds`,
        `  storageLeaseTtlMs [${NODE_STORAGE_LEASE_TTL_MS_DEFAULT}]  storageGraceMs [${NODE_STORAGE_GRACE_MS_DEFAULT}]: a storage server missing this long after its lease is dead;`,
        "                  writes to its chunks wait until then (a short grace re-replicates sooner after a restart)",
        `  vserversMax     [${VSERVERS_PER_NODE_DEFAULT}]  nodeSettleMs [30000]  moveCooldownMs [30000]  logLevel [info]`,
        `  admin           {"host": "127.0.0.1", "port": ${ADMIN_PORT_DEFAULT}}: serve the admin API here (token in dataDir/admin-token);`,
        "                  its /metrics has this node's NFS calls: give every filer node one to scrape them all",
        '  network         [{"driver": "loopback"}]: VIPs in 127.0.0.0/8; or',
        '                  {"driver": "linux", "ports": [{"name": "eth0", "subnet": "10.7.1.0/24"}, ...]}: VIPs go',
        "                  on a good port of their subnet (ip addr add + gratuitous ARP) and move to another",
        "                  port of that subnet when theirs goes down; a node with no good port on a VIP's",
        "                  subnet, or that cannot reach a storage server of its volumes, gives its vservers up",
        '                  to a node that can (needs root, iproute2 and arping); "tickle": false leaves',
        "                  out the tickle ACKs that make clients of a moved VIP reconnect at once (built with gcc);",
        '                  a port\'s "probes": ["10.7.1.1"] are ARP-probed with the other nodes: a port with link',
        "                  that nobody answers is cut off, and its VIPs are answered and forwarded by a node",
        '                  that still reaches the subnet (the vserver stays); "portBalance" (default',
        '                  {"startRatio": 1.5, "stopRatio": 1.2, "movesMax": 4, "floorBytesPerSec": 1048576})',
        "                  moves VIPs off a port carrying startRatio x the mean of its subnet's ports, until",
        "                  it is within stopRatio; false turns it off",
        "",
        "SIGINT or SIGTERM: the node's vservers are committed and unmounted, then it leaves; the master",
        "moves them to other nodes. Logs go to stderr as JSON lines.",
        "",
        "Example:",
        "  flotilla storage secret --out /etc/flotilla/secret",
        `  echo '{"nodeId":"n1","etcd":["http://127.0.0.1:2379"],"secretFile":"/etc/flotilla/secret","dataDir":"/srv/n1"}' > n1.json`,
        "  flotilla node --config n1.json",
      ].join("\n"),
    )
    .action((options: { config?: string }) =>
      runVerb("node", 2, output, async () => {
        if (options.config === undefined)
          throw new CliFailure("give --config FILE (see flotilla node --help)");
        return runNode(options.config, output);
      }),
    );
}
