/**
 * `flotilla lab`: the network lab, Linux network namespaces cabled like a small data centre (two
 * client subnets and a storage network), to run Flotilla nodes on real interfaces and pull their
 * cables. See src/net/lab-topology.ts for the layout.
 */
import { type Command, InvalidArgumentError } from "commander";
import { labPrerequisiteProblem, NetworkLab } from "../net/lab.ts";
import { isLabPortName, isLabSubnetName, type LabFault } from "../net/lab-faults.ts";
import type { LabStatus } from "../net/lab-status.ts";
import {
  LAB_CLIENTS_DEFAULT,
  LAB_CLIENTS_MAX,
  LAB_NODES_DEFAULT,
  LAB_NODES_MAX,
  LAB_TAG_DEFAULT,
  LAB_TAG_PATTERN,
  type LabPortName,
  type LabSubnetName,
  type LabTopology,
} from "../net/lab-topology.ts";
import { type Output, processOutput, table } from "./output.ts";
import { CliFailure, runVerb } from "./run-verb.ts";

const LAYOUT_HELP = [
  "",
  "Layout (x: the second octet, a hash of the tag into 100-199 unless --octet):",
  "  fl<tag>sw          the switch: bridges brA (10.x.1.0/24), brB (10.x.2.0/24), brS (storage, 10.x.9.0/24)",
  "  fl<tag>n<i>        node i: eth0 10.x.1.1<i>, eth1 10.x.2.1<i>, stor0 10.x.9.1<i>; forwards IPv4",
  "  fl<tag>c<j>        client j: eth0 10.x.1.20<j> (odd j) or 10.x.2.20<j> (even j), and a route to",
  "                     the other client subnet through node 1",
  "  VIPs               10.x.1.50-99 and 10.x.2.50-99 are left free for VIPs",
  "Run a program in a namespace: ip netns exec fllabn1 <program> ...",
  "Needs root (network namespaces, veth pairs and bridges) and iproute2.",
].join("\n");

function parseTag(text: string): string {
  if (!LAB_TAG_PATTERN.test(text))
    throw new InvalidArgumentError(`"${text}" is not a lab tag (1 to 6 of a-z, 0-9)`);
  return text;
}

function wholeNumber(min: number, max: number, what: string): (text: string) => number {
  return (text) => {
    const value = Number(text);
    if (!/^\d+$/.test(text) || value < min || value > max) {
      throw new InvalidArgumentError(`"${text}" is not ${what} (${min} to ${max})`);
    }
    return value;
  };
}

function parsePort(text: string): LabPortName {
  if (!isLabPortName(text))
    throw new InvalidArgumentError(`"${text}" is not a node port (eth0, eth1 or stor0)`);
  return text;
}

function parseSubnet(text: string): LabSubnetName {
  const upper = text.toUpperCase();
  if (!isLabSubnetName(upper)) throw new InvalidArgumentError(`"${text}" is not a client subnet (A or B)`);
  return upper;
}

/** Runs a lab verb after checking it can run here at all (root), so the operator hears why not first. */
function runLab(verb: string, output: Output, body: () => Promise<number>): Promise<void> {
  return runVerb(`lab ${verb}`, 1, output, async () => {
    const problem = labPrerequisiteProblem();
    if (problem !== undefined) throw new CliFailure(problem);
    return body();
  });
}

export function formatTopology(topology: LabTopology): string[] {
  const { networks } = topology;
  const lines = [
    `lab ${topology.tag}: switch ${topology.switchNamespace}, subnet A ${networks.A.cidr}, subnet B ${networks.B.cidr}, storage ${networks.storage.cidr}`,
  ];
  for (const node of topology.nodes) {
    const ports = node.ports.map((p) => `${p.name} ${p.address}`).join(", ");
    lines.push(`  ${node.id} (${node.namespace}): ${ports}`);
  }
  for (const client of topology.clients) {
    lines.push(
      `  ${client.id} (${client.namespace}): eth0 ${client.port.address} (subnet ${client.port.network}), ${client.route.cidr} via ${client.route.via}`,
    );
  }
  const pool = (subnet: "A" | "B") => {
    const addresses = topology.vipPools[subnet].addresses;
    return `${addresses[0]}-${addresses.at(-1)?.split(".").at(-1)}`;
  };
  lines.push(`  VIP pools: A ${pool("A")}, B ${pool("B")}`);
  return lines;
}

export function formatLabStatus(status: LabStatus): string[] {
  const rows = status.ports.map((p) => [
    p.node,
    p.port,
    p.network,
    p.operstate,
    `${p.bridgePortUp ? "up" : "down"}, ${p.attached ? "attached" : "detached"}`,
    p.addresses.join(",") || "-",
  ]);
  return [
    `lab ${status.tag} (10.${status.octet}.0.0/16)`,
    ...table(["NODE", "PORT", "NETWORK", "STATE", "SWITCH", "ADDRESSES"], rows),
  ];
}

function tagOption(command: Command): Command {
  return command.option("--tag <tag>", "which lab (namespaces fl<tag>...)", parseTag, LAB_TAG_DEFAULT);
}

interface TagOptions {
  readonly tag: string;
}

/** Applies one fault to the lab that is up under `tag`. */
function applyFault(tag: string, fault: LabFault, words: string, output: Output): Promise<void> {
  return runLab(`fault ${fault.kind}`, output, async () => {
    const lab = await NetworkLab.open(tag);
    await lab.fault(fault);
    output.line(`lab ${tag}: ${words}`);
    return 0;
  });
}

function registerFaults(lab: Command, output: Output): void {
  const fault = lab
    .command("fault")
    .description("pull a cable or cut a subnet in a lab that is up, and undo it")
    .addHelpText(
      "after",
      [
        "",
        "port-down/port-up: the node's port loses carrier (its operstate is no longer UP), as with a pulled cable.",
        "subnet-down/subnet-up, storage-cut/storage-heal: the port stays UP but the switch stops passing it.",
        "NODE is n1, n2, ... (or 1, 2, ...).",
        "",
        "Examples:",
        "  flotilla lab fault port-down n1 eth0",
        "  flotilla lab fault subnet-down n2 B",
        "  flotilla lab fault storage-cut n3",
        "  flotilla lab fault heal",
      ].join("\n"),
    );
  const verb = (usage: string, description: string): Command =>
    tagOption(fault.command(usage).description(description));
  const port = (command: Command) =>
    command.argument("<node>", "n1, n2, ...").argument("<port>", "eth0, eth1 or stor0", parsePort);
  const subnet = (command: Command) =>
    command.argument("<node>", "n1, n2, ...").argument("<subnet>", "A or B", parseSubnet);
  const node = (command: Command) => command.argument("<node>", "n1, n2, ...");

  port(verb("port-down", "the node's port loses carrier (the switch side of its cable goes down)")).action(
    (n: string, p: LabPortName, options: TagOptions) =>
      applyFault(options.tag, { kind: "port-down", node: n, port: p }, `${n} ${p} down (no carrier)`, output),
  );
  port(verb("port-up", "undo port-down")).action((n: string, p: LabPortName, options: TagOptions) =>
    applyFault(options.tag, { kind: "port-up", node: n, port: p }, `${n} ${p} up`, output),
  );
  subnet(verb("subnet-down", "the node's ports on subnet A or B stay up but pass nothing")).action(
    (n: string, s: LabSubnetName, options: TagOptions) =>
      applyFault(
        options.tag,
        { kind: "subnet-down", node: n, subnet: s },
        `${n} cut from subnet ${s}`,
        output,
      ),
  );
  subnet(verb("subnet-up", "undo subnet-down")).action((n: string, s: LabSubnetName, options: TagOptions) =>
    applyFault(options.tag, { kind: "subnet-up", node: n, subnet: s }, `${n} back on subnet ${s}`, output),
  );
  node(verb("storage-cut", "the node's storage port stays up but passes nothing")).action(
    (n: string, options: TagOptions) =>
      applyFault(options.tag, { kind: "storage-cut", node: n }, `${n} cut from the storage network`, output),
  );
  node(verb("storage-heal", "undo storage-cut")).action((n: string, options: TagOptions) =>
    applyFault(options.tag, { kind: "storage-heal", node: n }, `${n} back on the storage network`, output),
  );
  verb("heal", "every node port up and attached to its bridge again").action((options: TagOptions) =>
    applyFault(options.tag, { kind: "heal" }, "healed: every node port up and attached", output),
  );
}

interface UpOptions extends TagOptions {
  readonly nodes: number;
  readonly clients: number;
  readonly octet: number | undefined;
  readonly dualPorts: boolean;
  readonly hostLinks: boolean;
}

/** Adds `lab up|down|status|fault`. */
export function registerLab(program: Command, output: Output = processOutput): void {
  const lab = program
    .command("lab")
    .description("the network lab: Linux network namespaces to run nodes on real interfaces (needs root)")
    .addHelpText(
      "after",
      `${LAYOUT_HELP}\n\nExamples:\n  flotilla lab up\n  flotilla lab status\n  flotilla lab fault port-down n1 eth0\n  flotilla lab down`,
    );
  tagOption(lab.command("up").description("build a lab (removing first what a lab of the same tag left)"))
    .option(
      "--nodes <n>",
      "node namespaces",
      wholeNumber(1, LAB_NODES_MAX, "a node count"),
      LAB_NODES_DEFAULT,
    )
    .option(
      "--clients <n>",
      "client namespaces",
      wholeNumber(0, LAB_CLIENTS_MAX, "a client count"),
      LAB_CLIENTS_DEFAULT,
    )
    .option(
      "--octet <n>",
      "second octet of the lab's addresses (default: from the tag)",
      wholeNumber(0, 255, "an octet"),
    )
    .option("--dual-ports", "a second port per node on each client subnet (eth2 on A, eth3 on B)", false)
    .option(
      "--host-links",
      "link this host in: a cluster network (node port clu0, this host 10.x.8.254) and the storage network (10.x.9.254)",
      false,
    )
    .addHelpText("after", `${LAYOUT_HELP}\n\nExample:\n  flotilla lab up --tag t1 --nodes 4 --clients 2`)
    .action((options: UpOptions) =>
      runLab("up", output, async () => {
        const { tag, nodes, clients, octet, dualPorts, hostLinks } = options;
        const made = await NetworkLab.up({
          tag,
          nodes,
          clients,
          dualPorts,
          hostLinks,
          ...(octet === undefined ? {} : { octet }),
        });
        for (const line of formatTopology(made.topology)) output.line(line);
        return 0;
      }),
    );
  tagOption(
    lab.command("down").description("remove a lab: every namespace fl<tag>... (nothing there is fine)"),
  )
    .addHelpText("after", "\nExample:\n  flotilla lab down --tag t1")
    .action((options: TagOptions) =>
      runLab("down", output, async () => {
        const removed = await NetworkLab.down(options.tag);
        output.line(
          removed.length === 0
            ? `lab ${options.tag}: nothing to remove`
            : `lab ${options.tag}: removed ${removed.length} namespaces (${removed.join(" ")})`,
        );
        return 0;
      }),
    );
  tagOption(lab.command("status").description("each node port: state, switch attachment, addresses"))
    .option("--json", "print JSON for scripts", false)
    .addHelpText(
      "after",
      "\nSTATE is the kernel's operstate of the node's port; SWITCH: the switch side of the port, up or down\n(down after port-down), attached to its bridge or detached (after subnet-down or storage-cut).\n\nExample:\n  flotilla lab status --json",
    )
    .action((options: TagOptions & { json: boolean }) =>
      runLab("status", output, async () => {
        const status = await (await NetworkLab.open(options.tag)).status();
        if (options.json) output.line(JSON.stringify(status, null, 2));
        else for (const line of formatLabStatus(status)) output.line(line);
        return 0;
      }),
    );
  registerFaults(lab, output);
}
