/**
 * The operator's verbs, on top of the admin API: `status`, `vserver ...`, `vip ...`, `volume ...`,
 * `export ...`, `node ...`, `fault kill-node`. Each takes --api, --token-file and --json, prints one
 * line (or the status tables) for people and the API's JSON for scripts, and exits with a code a
 * script can rely on (see EXIT below).
 */
import { type Command, InvalidArgumentError, Option } from "commander";
import type { StatusDocument } from "../api/status.ts";
import type { BalancePlan } from "../storage/balance-plan.ts";
import { formatBytes, parseSize } from "../util/size.ts";
import { ApiFailure, type CommonOptions, call, EXIT, runAdmin, withCommon } from "./api-client.ts";
import { type Output, processOutput, table } from "./output.ts";

/** One line for a finished live move, from the API's migration record. */
function liveMoveLine(id: string, node: string, json: unknown): string {
  const r = (typeof json === "object" && json !== null ? json : {}) as Record<string, unknown>;
  const num = (k: string): number => (typeof r[k] === "number" ? (r[k] as number) : 0);
  return `moved vserver ${id} live to ${node}: ${num("pagesSent")} pages (${Math.round(num("bytesSent") / 1024)} KiB) in ${num("rounds")} pre-copy rounds, suspended ${num("suspendedMs")} ms`;
}

/** A parser for whole numbers from `min` to `max`, for commander. */
function wholeNumber(min: number, max: number, what: string): (text: string) => number {
  return (text) => {
    const value = Number(text);
    if (!/^-?\d+$/.test(text) || value < min || value > max)
      throw new InvalidArgumentError(`"${text}" is not ${what} (a whole number from ${min} to ${max})`);
    return value;
  };
}

const parsePriority = wholeNumber(-1_000_000, 1_000_000, "a priority");
const parsePort = wholeNumber(1, 65_535, "a port");
const parseReplicas = wholeNumber(1, 8, "a replica count");

function parseSizeText(text: string): string {
  try {
    parseSize(text);
  } catch (error) {
    throw new InvalidArgumentError(error instanceof Error ? error.message : String(error));
  }
  return text;
}

/** A repeatable option: without a default, so a required one is really required. */
function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** The status document as tables for people. */
export function formatStatus(status: StatusDocument): string {
  const lines: string[] = [
    `master: ${status.master === null ? "none" : `${status.master.nodeId} (term ${status.master.term})`}`,
    "",
  ];
  lines.push(
    ...table(
      ["NODE", "STATE", "OPERATOR", "ROLES", "VSERVERS", "LOAD/CORE"],
      status.nodes.map((n) => [
        `${n.id}${n.isMaster ? "*" : ""}`,
        n.alive ? "alive" : "dead",
        n.operatorState,
        n.roles.join(",") || "-",
        n.vservers.join(",") || "-",
        n.loadPerCore === null ? "-" : n.loadPerCore.toFixed(2),
      ]),
    ),
    "",
  );
  lines.push(
    ...table(
      ["VSERVER", "STATE", "NODE", "PRIO", "PINNED", "STATE MEM", "VIPS", "URL"],
      status.vservers.map((v) => [
        v.id,
        v.state,
        v.node ?? "-",
        String(v.priority),
        v.pinned ? "yes" : "no",
        v.serviceState === null
          ? "-"
          : `${v.serviceState.pages}p ${formatBytes(v.serviceState.bytes)} (${formatBytes(v.serviceState.liveBytes)} live)`,
        v.vips.join(","),
        v.urls[0] ?? "-",
      ]),
    ),
  );
  for (const v of status.vservers) if (v.blocked !== null) lines.push(`  ${v.id}: ${v.blocked.text}`);
  lines.push("");
  const withPorts = status.nodes.filter((n) => n.ports.length > 0);
  if (withPorts.length > 0) {
    lines.push(
      ...table(
        ["NODE", "PORTS (up; cut: link but its subnet does not answer; down: no link)"],
        withPorts.map((n) => [
          n.id,
          n.ports.map((p) => `${p.name}${p.subnet === null ? "" : ` ${p.subnet}`} ${p.state}`).join(", "),
        ]),
      ),
    );
    for (const r of status.routes)
      lines.push(
        `  VIP ${r.vip} (${r.vserver} on ${r.owner}) answered by ${r.router} on ${r.routerPort}, forwarded over ${r.viaSubnet}: ${r.reason}`,
      );
    lines.push("");
  }
  lines.push(
    ...table(
      ["VOLUME", "STATE", "SIZE", "REPLICAS", "VSERVER", "CHUNKS", "SHORT", "NO COPY", "MOVING"],
      status.volumes.map((v) => [
        v.id,
        v.state,
        formatBytes(v.sizeBytes),
        String(v.replicationFactor),
        v.vserver ?? "-",
        String(v.chunks),
        String(v.underReplicated),
        String(v.unavailable),
        String(v.moving),
      ]),
    ),
  );
  for (const v of status.volumes) {
    if (v.unavailable > 0)
      lines.push(
        `  ${v.id}: ${v.unavailable} of ${v.chunks} chunks have no live copy; their I/O fails until a server holding one returns`,
      );
    else if (v.underReplicated > 0)
      lines.push(
        `  ${v.id}: ${v.underReplicated} of ${v.chunks} chunks lack a copy; re-replication copies them where another server can take them`,
      );
  }
  return lines.join("\n");
}

/** The balancer's plan as lines: each move and why, then the ratio before and after, or why idle. */
export function formatBalancePlan(plan: BalancePlan, applied: boolean): string {
  const lines = [
    `max/mean load ${plan.ratioBefore.toFixed(2)} now, ${plan.ratioAfter.toFixed(2)} after the ${plan.moves.length} ${applied ? "moves started" : "moves planned"}`,
  ];
  if (plan.moves.length > 0)
    lines.push(
      "",
      ...table(
        ["VOLUME", "CHUNK", "FROM", "TO", "WHY", "FROM LOAD", "TO LOAD"],
        plan.moves.map((m) => [
          m.volumeId,
          String(m.chunkIndex),
          m.from,
          m.to,
          m.why === "full" ? "full" : "hot",
          m.fromLoad.toFixed(1),
          m.toLoad.toFixed(1),
        ]),
      ),
    );
  if (plan.idle !== null) lines.push("", plan.idle);
  return lines.join("\n");
}

export function registerAdmin(program: Command, output: Output = processOutput): void {
  withCommon(
    program.command("status").description("the cluster: nodes, vservers (where they run, why not), volumes"),
    "flotilla status    # or: until flotilla status >/dev/null; do sleep 1; done",
  ).action((options: CommonOptions) =>
    runAdmin("status", options, output, async () => {
      const status = (await call(options, "GET", "/v1/status")) as StatusDocument;
      const allRunning = status.vservers.every((v) => v.state === "running");
      return {
        json: status,
        line: formatStatus(status),
        exitCode: allRunning ? EXIT.OK : EXIT.NOT_ALL_RUNNING,
      };
    }),
  );

  const vserver = program.command("vserver").description("create, delete, move, pin and prioritize vservers");
  withCommon(
    vserver
      .command("create <id>")
      .description("make a vserver; the master places it on the least-loaded node")
      .requiredOption(
        "--vip <address>",
        "a VIP (127.0.0.0/8 with the loopback driver); repeat: two or more",
        collect,
      )
      .requiredOption(
        "--volume <id>",
        "its volume (flotilla volume create); repeat for more: the first is the export /, the others /ID",
        collect,
      )
      .option("--name <name>", "a name for people (default: the id)")
      .option("--priority <n>", "higher fails over first", parsePriority, 0)
      .option("--pinned", "never failed over: stays down with its node", false)
      .option(
        "--export <rule>",
        "exports(5)-style rule; repeat (default 127.0.0.0/8(rw,no_root_squash))",
        collect,
      )
      .option("--nfs-port <port>", "NFS port on every VIP (default 2049)", parsePort)
      .option("--mount-port <port>", "MOUNT port on every VIP (default 20048)", parsePort),
    "flotilla vserver create vs3 --vip 127.0.3.1 --vip 127.0.3.2 --volume vs3-data",
  ).action(
    (
      id: string,
      options: CommonOptions & {
        vip: string[];
        volume: string[];
        name?: string;
        priority: number;
        pinned: boolean;
        export?: string[];
        nfsPort?: number;
        mountPort?: number;
      },
    ) =>
      runAdmin("vserver create", options, output, async () => {
        const body = {
          id,
          vips: options.vip,
          volumes: options.volume,
          priority: options.priority,
          pinned: options.pinned,
          ...(options.nfsPort === undefined ? {} : { nfsPort: options.nfsPort }),
          ...(options.mountPort === undefined ? {} : { mountPort: options.mountPort }),
          ...(options.name === undefined ? {} : { name: options.name }),
          ...(options.export === undefined ? {} : { exports: options.export }),
        };
        const json = await call(options, "POST", "/v1/vservers", body);
        return {
          json,
          line: `created vserver ${id} (VIPs ${options.vip.join(", ")}, ${options.volume.length === 1 ? "volume" : "volumes"} ${options.volume.join(", ")}); the master places it`,
        };
      }),
  );
  withCommon(
    vserver.command("delete <id>").description("stop and delete a vserver (its volume stays)"),
    "flotilla vserver delete vs3",
  ).action((id: string, options: CommonOptions) =>
    runAdmin("vserver delete", options, output, async () => ({
      json: await call(options, "DELETE", `/v1/vservers/${encodeURIComponent(id)}`),
      line: `deleted vserver ${id}`,
    })),
  );
  withCommon(
    vserver
      .command("move <id> [node]")
      .description(
        "move a vserver to a live, enabled node now; --live moves its running service (reply cache, mounts, clients, write verifier) without a cold restart",
      )
      .option("--to <node>", "the node to move it to (or give it after the id)")
      .option("--live", "live move: pre-copy its state, suspend briefly, hand over; waits for the end", false)
      .option("--force", "with --live: move a pinned vserver too", false),
    "flotilla vserver move vs1 --to n3 --live",
  ).action(
    (
      id: string,
      nodeArg: string | undefined,
      options: CommonOptions & { to?: string; live: boolean; force: boolean },
    ) =>
      runAdmin("vserver move", options, output, async () => {
        const node = options.to ?? nodeArg;
        if (
          node === undefined ||
          (options.to !== undefined && nodeArg !== undefined && nodeArg !== options.to)
        )
          throw new ApiFailure(EXIT.USAGE, "give the target node once: flotilla vserver move VS --to NODE");
        if (options.force && !options.live)
          throw new ApiFailure(EXIT.USAGE, "--force applies to --live moves only");
        const body = options.live ? { node, live: true, force: options.force } : { node };
        const json = await call(options, "POST", `/v1/vservers/${encodeURIComponent(id)}/move`, body);
        return {
          json,
          line: options.live ? liveMoveLine(id, node, json) : `moving vserver ${id} to ${node}`,
        };
      }),
  );
  for (const [verb, text] of [
    ["pin", "never fail it over (it stays down with its node)"],
    ["unpin", "fail it over again when its node dies"],
  ] as const) {
    withCommon(vserver.command(`${verb} <id>`).description(text), `flotilla vserver ${verb} vs1`).action(
      (id: string, options: CommonOptions) =>
        runAdmin(`vserver ${verb}`, options, output, async () => ({
          json: await call(options, "POST", `/v1/vservers/${encodeURIComponent(id)}/${verb}`),
          line: `${verb === "pin" ? "pinned" : "unpinned"} vserver ${id}`,
        })),
    );
  }
  withCommon(
    vserver.command("priority <id> <n>").description("set the failover priority (higher first)"),
    "flotilla vserver priority vs1 100",
  ).action((id: string, n: string, options: CommonOptions) =>
    runAdmin("vserver priority", options, output, async () => ({
      json: await call(options, "PUT", `/v1/vservers/${encodeURIComponent(id)}/priority`, {
        priority: parsePriority(n),
      }),
      line: `vserver ${id} has priority ${n}`,
    })),
  );

  const vip = program.command("vip").description("add or remove a vserver's VIPs");
  withCommon(
    vip.command("add <vserver> <vip>").description("give a vserver one more VIP"),
    "flotilla vip add vs1 127.0.1.3",
  ).action((vserverId: string, address: string, options: CommonOptions) =>
    runAdmin("vip add", options, output, async () => ({
      json: await call(options, "POST", `/v1/vservers/${encodeURIComponent(vserverId)}/vips`, {
        vip: address,
      }),
      line: `vserver ${vserverId} now answers on ${address} too`,
    })),
  );
  withCommon(
    vip.command("remove <vserver> <vip>").description("take a VIP from a vserver (it keeps at least two)"),
    "flotilla vip remove vs1 127.0.1.3",
  ).action((vserverId: string, address: string, options: CommonOptions) =>
    runAdmin("vip remove", options, output, async () => ({
      json: await call(
        options,
        "DELETE",
        `/v1/vservers/${encodeURIComponent(vserverId)}/vips/${encodeURIComponent(address)}`,
      ),
      line: `vserver ${vserverId} no longer answers on ${address}`,
    })),
  );

  const volume = program.command("volume").description("create or delete replicated volumes");
  withCommon(
    volume
      .command("create <id>")
      .description("make a volume on the storage servers")
      .requiredOption("--size <size>", "e.g. 10G", parseSizeText)
      .addOption(
        new Option("--replicas <n>", "copies of every chunk (default 2 with two or more servers)").argParser(
          parseReplicas,
        ),
      ),
    "flotilla volume create vs3-data --size 1G",
  ).action((id: string, options: CommonOptions & { size: string; replicas?: number }) =>
    runAdmin("volume create", options, output, async () => ({
      json: await call(options, "POST", "/v1/volumes", {
        id,
        size: options.size,
        ...(options.replicas === undefined ? {} : { replicationFactor: options.replicas }),
      }),
      line: `created volume ${id} (${options.size})`,
    })),
  );
  withCommon(
    volume.command("delete <id>").description("delete a volume no vserver uses (its data is gone)"),
    "flotilla volume delete vs3-data",
  ).action((id: string, options: CommonOptions) =>
    runAdmin("volume delete", options, output, async () => ({
      json: await call(options, "DELETE", `/v1/volumes/${encodeURIComponent(id)}`),
      line: `deleted volume ${id}`,
    })),
  );

  const exportsCommand = program.command("export").description("add or remove a vserver's export rules");
  withCommon(
    exportsCommand.command("add <vserver> <rule>").description("admit clients, exports(5)-style"),
    "flotilla export add vs1 '10.0.0.0/8(ro)'",
  ).action((vserverId: string, rule: string, options: CommonOptions) =>
    runAdmin("export add", options, output, async () => ({
      json: await call(options, "POST", `/v1/vservers/${encodeURIComponent(vserverId)}/exports`, { rule }),
      line: `vserver ${vserverId} exports to ${rule}`,
    })),
  );
  withCommon(
    exportsCommand.command("remove <vserver> <rule>").description("drop an export rule (one must stay)"),
    "flotilla export remove vs1 '10.0.0.0/8(ro)'",
  ).action((vserverId: string, rule: string, options: CommonOptions) =>
    runAdmin("export remove", options, output, async () => ({
      json: await call(options, "DELETE", `/v1/vservers/${encodeURIComponent(vserverId)}/exports`, { rule }),
      line: `vserver ${vserverId} no longer exports to ${rule}`,
    })),
  );

  const nodeVerbs: [string, string][] = [
    ["drain", "move every vserver off the node (pinned ones too); it receives none"],
    ["disable", "the node keeps its vservers and receives no new ones"],
    ["enable", "the node takes vservers again"],
  ];
  // `flotilla node --config FILE` runs a node; these verbs act on one through the API.
  const parent = program.commands.find((c) => c.name() === "node") ?? program.command("node");
  for (const [verb, text] of nodeVerbs) {
    withCommon(parent.command(`${verb} <node>`).description(text), `flotilla node ${verb} n2`).action(
      (nodeId: string, options: CommonOptions) =>
        runAdmin(`node ${verb}`, options, output, async () => ({
          json: await call(options, "POST", `/v1/nodes/${encodeURIComponent(nodeId)}/${verb}`),
          line: `node ${nodeId}: ${verb === "drain" ? "draining" : `${verb}d`}`,
        })),
    );
  }

  const storage = program.commands.find((c) => c.name() === "storage") ?? program.command("storage");
  withCommon(
    storage
      .command("balance")
      .description(
        "the storage balancer: what it would move from hot or full servers to cool ones, and why (--plan, the default), or one pass of it now (--apply); the master also runs it on its own unless its node config says storageBalance.auto false",
      )
      .option("--plan", "show what would move and why (also without either option)", false)
      .option("--apply", "start the planned moves now; they go on in the background", false),
    "flotilla storage balance --plan",
  ).action((options: CommonOptions & { plan: boolean; apply: boolean }) =>
    runAdmin("storage balance", options, output, async () => {
      if (options.plan && options.apply) throw new ApiFailure(EXIT.USAGE, "give --plan or --apply, not both");
      const plan = (await call(
        options,
        options.apply ? "POST" : "GET",
        "/v1/storage/balance",
      )) as BalancePlan;
      return { json: plan, line: formatBalancePlan(plan, options.apply) };
    }),
  );

  const fault = program
    .command("fault")
    .description("inject faults into a one-process cluster (flotilla cluster up)");
  withCommon(
    fault
      .command("kill-node <node>")
      .description("stop a node abruptly: sockets dropped, nothing flushed or released"),
    "flotilla fault kill-node n1",
  ).action((nodeId: string, options: CommonOptions) =>
    runAdmin("fault kill-node", options, output, async () => ({
      json: await call(options, "POST", "/v1/faults/kill-node", { node: nodeId }),
      line: `killed node ${nodeId}; its vservers fail over once its lease runs out`,
    })),
  );
}
