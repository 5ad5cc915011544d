/**
 * The network lab at the I/O edge: runs the commands lab-topology.ts and lab-faults.ts plan, reads
 * the state back, and starts processes inside the lab's namespaces. Needs root (CAP_NET_ADMIN and
 * CAP_SYS_ADMIN for `ip netns`) and iproute2.
 */
import { type ChildProcess, execFile, type SpawnOptions, spawn } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { faultCommands, type LabFault } from "./lab-faults.ts";
import { type LabStatus, labStatusOf, octetOfLabAddress, parseLinks, parseNetnsList } from "./lab-status.ts";
import {
  type Argv,
  type LabConfig,
  type LabTopology,
  labHostLinkNames,
  labNamespaces,
  labShapeIn,
  labTopology,
  teardownCommands,
  upCommands,
} from "./lab-topology.ts";

/** One `ip` command takes milliseconds; this bounds a hung one (netns del can wait on the kernel). */
const IP_COMMAND_MS_MAX = 15_000;
/** `ip -j` of a namespace is a few KiB; this bounds what a command may print. */
const COMMAND_OUTPUT_BYTES_MAX = 4 * 1024 * 1024;
/** The kernel reports carrier changes through linkwatch, up to a second late; the lab is up once it has. */
const CARRIER_WAIT_MS_MAX = 10_000;
const CARRIER_POLL_MS = 50;

/** A lab command that failed: which one, how, and what it printed on stderr. */
export class LabCommandError extends Error {
  override name = "LabCommandError";
  readonly argv: Argv;
  readonly stderr: string;
  constructor(argv: Argv, how: string, stderr: string, options?: ErrorOptions) {
    const said = stderr.trim() === "" ? "" : `: ${stderr.trim()}`;
    super(`${argv.join(" ")} ${how}${said}`, options);
    this.argv = argv;
    this.stderr = stderr;
  }
}

/** The lab asked for is not there (or only part of it is). */
export class LabNotUpError extends Error {
  override name = "LabNotUpError";
}

/** Runs one command to completion and returns its stdout; a LabCommandError if it fails or hangs. */
export function runLabCommand(argv: Argv): Promise<string> {
  const [program, ...args] = argv;
  if (program === undefined) return Promise.reject(new LabCommandError(argv, "is empty", ""));
  return new Promise((resolve, reject) => {
    execFile(
      program,
      args,
      {
        timeout: IP_COMMAND_MS_MAX,
        killSignal: "SIGKILL",
        maxBuffer: COMMAND_OUTPUT_BYTES_MAX,
        encoding: "utf8",
      },
      (error, stdout, stderr) => {
        if (error === null) return resolve(stdout);
        const code = (error as NodeJS.ErrnoException).code;
        const how =
          code === "ENOENT"
            ? `failed: ${program} is not installed (the lab needs iproute2)`
            : error.killed
              ? `was killed after ${IP_COMMAND_MS_MAX} ms`
              : `failed (exit ${String(code ?? error.signal ?? "?")})`;
        reject(new LabCommandError(argv, how, stderr, { cause: error }));
      },
    );
  });
}

async function runAll(commands: readonly Argv[]): Promise<void> {
  for (const argv of commands) await runLabCommand(argv);
}

/** The names of every network namespace on the host. */
export async function listNamespaces(): Promise<string[]> {
  return parseNetnsList(await runLabCommand(["ip", "-j", "netns", "list"]));
}

/**
 * Why the lab cannot run here, or undefined when it can: it needs root, to make network namespaces
 * and the veth pairs and bridges in them.
 */
export function labPrerequisiteProblem(): string | undefined {
  if (process.getuid?.() !== 0) {
    return "the network lab needs root: it makes network namespaces, veth pairs and bridges (ip netns, ip link)";
  }
  return undefined;
}

/**
 * Starts `argv` inside `namespace` (`ip netns exec` execs it in place, so the ChildProcess is the
 * program itself: killing it kills the program). The caller owns the process and must end it.
 */
export function labExec(namespace: string, argv: Argv, options: SpawnOptions = {}): ChildProcess {
  if (argv.length === 0) throw new LabCommandError(argv, "is empty", "");
  return spawn("ip", ["netns", "exec", namespace, ...argv], options);
}

/** A lab that is up: built by `up`, or found by `open`. `down` (or disposal) removes it. */
export class NetworkLab {
  readonly topology: LabTopology;

  private constructor(topology: LabTopology) {
    this.topology = topology;
  }

  /** Builds the lab, removing first whatever a lab of the same tag left; returns once every port has carrier. */
  static async up(config: LabConfig): Promise<NetworkLab> {
    const topology = labTopology(config);
    await NetworkLab.down(topology.tag);
    try {
      await runAll(upCommands(topology));
      const lab = new NetworkLab(topology);
      await lab.untilCarrier();
      return lab;
    } catch (error) {
      // Half a lab is worse than none: the next `up` would clean it, but an operator might not run one.
      await NetworkLab.down(topology.tag).catch(() => undefined);
      throw error;
    }
  }

  /** The lab tagged `tag` as it is now (its size and addresses read from it), or a LabNotUpError. */
  static async open(tag: string): Promise<NetworkLab> {
    const shape = labShapeIn(tag, await listNamespaces());
    if (shape === undefined || shape.nodes === 0) {
      throw new LabNotUpError(
        `lab ${tag} is not up (no namespaces fl${tag}sw and fl${tag}n1; run: flotilla lab up --tag ${tag})`,
      );
    }
    const sized = labTopology({ tag, nodes: shape.nodes, clients: shape.clients });
    // The octet may have been chosen at `up`: read it from node 1's storage address.
    const node1 = sized.nodes[0]!;
    const stor = node1.ports.find((p) => p.network === "storage")!;
    const links = parseLinks(
      await runLabCommand(["ip", "-j", "-n", node1.namespace, "addr", "show", "dev", stor.name]),
      `ip -j -n ${node1.namespace} addr show dev ${stor.name}`,
    );
    const octet = links.flatMap((l) => l.addr_info).map((a) => octetOfLabAddress(a.local ?? ""))[0];
    if (octet === undefined)
      throw new LabNotUpError(
        `lab ${tag} is incomplete (${node1.id} ${stor.name} has no address); run lab up again`,
      );
    // Optional ports show in node 1's links: eth2 for dual ports, clu0 for host links.
    const names = new Set(
      parseLinks(
        await runLabCommand(["ip", "-j", "-n", node1.namespace, "link", "show"]),
        `ip -j -n ${node1.namespace} link show`,
      ).map((l) => l.ifname),
    );
    return new NetworkLab(
      labTopology({
        tag,
        nodes: shape.nodes,
        clients: shape.clients,
        octet,
        dualPorts: names.has("eth2"),
        hostLinks: names.has("clu0"),
      }),
    );
  }

  /** Removes every namespace of the lab tagged `tag`; returns their names (none: nothing to do). */
  static async down(tag: string): Promise<string[]> {
    const commands = teardownCommands(tag, await listNamespaces());
    // A host link goes with its peer in the switch namespace, but the kernel frees a deleted
    // namespace's devices later: delete this host's ends now, so an `up` right after finds no name taken.
    for (const name of labHostLinkNames(tag))
      await runLabCommand(["ip", "link", "del", name]).catch(() => undefined);
    await runAll(commands);
    return commands.map((argv) => argv[argv.length - 1]!);
  }

  down(): Promise<string[]> {
    return NetworkLab.down(this.topology.tag);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.down();
  }

  async status(): Promise<LabStatus> {
    const linksOf = async (namespace: string, verb: "addr" | "link") =>
      parseLinks(
        await runLabCommand(["ip", "-j", "-n", namespace, verb, "show"]),
        `ip -j -n ${namespace} ${verb} show`,
      );
    const nodeLinks = new Map(
      await Promise.all(
        this.topology.nodes.map(
          async (node) => [node.namespace, await linksOf(node.namespace, "addr")] as const,
        ),
      ),
    );
    return labStatusOf(this.topology, nodeLinks, await linksOf(this.topology.switchNamespace, "link"));
  }

  async fault(fault: LabFault): Promise<void> {
    await runAll(faultCommands(this.topology, fault));
  }

  exec(namespace: string, argv: Argv, options: SpawnOptions = {}): ChildProcess {
    return labExec(namespace, argv, options);
  }

  /** Waits until every lab port in every node and client namespace reports operstate UP. */
  private async untilCarrier(): Promise<void> {
    const deadline = performance.now() + CARRIER_WAIT_MS_MAX;
    const namespaces = labNamespaces(this.topology).filter((ns) => ns !== this.topology.switchNamespace);
    for (;;) {
      const down: string[] = [];
      for (const ns of namespaces) {
        const links = parseLinks(
          await runLabCommand(["ip", "-j", "-n", ns, "link", "show"]),
          `ip -j -n ${ns} link show`,
        );
        for (const link of links)
          if (link.ifname !== "lo" && link.operstate !== "UP") down.push(`${ns}/${link.ifname}`);
      }
      if (down.length === 0) return;
      if (performance.now() > deadline) {
        throw new LabNotUpError(
          `lab ports without carrier after ${CARRIER_WAIT_MS_MAX} ms: ${down.join(", ")}`,
        );
      }
      await sleep(CARRIER_POLL_MS);
    }
  }
}
