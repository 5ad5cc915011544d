/**
 * The network lab's shape, as data: which namespaces, bridges, veth pairs and addresses make a lab,
 * and the `ip` commands that build and remove it. Nothing here runs a command (see lab.ts).
 *
 * One "switch" namespace holds a bridge per network; every node and client namespace has veth pairs
 * whose other ends are ports of those bridges. Nothing lives in the host's namespace, so a lab cannot
 * disturb the host's network, and two labs are as separate as two hosts.
 */
import { z } from "zod";
import { assert } from "../util/assert.ts";

/** A command as an argument vector (never a shell string): argv[0] is the program. */
export type Argv = readonly string[];

export const LAB_TAG_PATTERN = /^[a-z0-9]{1,6}$/;
export const LAB_TAG_DEFAULT = "lab";
export const LAB_NODES_DEFAULT = 3;
export const LAB_CLIENTS_DEFAULT = 2;
/** Node and client addresses are .1<i> and .20<j>: one digit each keeps them apart and unique. */
export const LAB_NODES_MAX = 9;
export const LAB_CLIENTS_MAX = 9;
/** The kernel's IFNAMSIZ is 16 with the terminating NUL. */
export const INTERFACE_NAME_CHARS_MAX = 15;
/** The default second octet is a hash of the tag into this range (see labOctet). */
const OCTET_HASHED_MIN = 100;
const OCTET_HASHED_COUNT = 100;
const VIP_HOST_MIN = 50;
const VIP_HOST_MAX = 99;

export type LabSubnetName = "A" | "B";
export type LabNetworkName = LabSubnetName | "storage" | "cluster";
export type LabPortName = "eth0" | "eth1" | "eth2" | "eth3" | "stor0" | "clu0";

interface NodePortSpec {
  readonly name: LabPortName;
  readonly network: LabNetworkName;
  /** The port's host number on its network, before the node's index is added. */
  readonly hostBase: number;
}

/** Each node port, in order, and the network it is cabled to. */
export const LAB_NODE_PORTS: readonly NodePortSpec[] = [
  { name: "eth0", network: "A", hostBase: 10 },
  { name: "eth1", network: "B", hostBase: 10 },
  { name: "stor0", network: "storage", hostBase: 10 },
];
/** With `dualPorts`: a second port on each client subnet, so a port can fail over within its subnet. */
const DUAL_PORTS: readonly NodePortSpec[] = [
  { name: "eth2", network: "A", hostBase: 30 },
  { name: "eth3", network: "B", hostBase: 30 },
];
/** With `hostLinks`: the cluster network (the coordination store), apart from the storage network. */
const CLUSTER_PORT: NodePortSpec = { name: "clu0", network: "cluster", hostBase: 10 };
/** Every port name a lab may have. */
export const LAB_PORT_NAMES: readonly LabPortName[] = ["eth0", "eth1", "eth2", "eth3", "stor0", "clu0"];
/** This host's address on the networks it is linked to (with `hostLinks`). */
const HOST_LINK_HOST = 254;
const THIRD_OCTET: Readonly<Record<LabNetworkName, number>> = { A: 1, B: 2, cluster: 8, storage: 9 };
const BRIDGE: Readonly<Record<LabNetworkName, string>> = {
  A: "brA",
  B: "brB",
  cluster: "brC",
  storage: "brS",
};

export const labConfigSchema = z
  .object({
    tag: z.string().regex(LAB_TAG_PATTERN, "1 to 6 of a-z and 0-9").default(LAB_TAG_DEFAULT),
    nodes: z.number().int().min(1).max(LAB_NODES_MAX).default(LAB_NODES_DEFAULT),
    clients: z.number().int().min(0).max(LAB_CLIENTS_MAX).default(LAB_CLIENTS_DEFAULT),
    /** The second octet of every lab address (10.<octet>.x.y); default: a hash of the tag. */
    octet: z.number().int().min(0).max(255).optional(),
    /** A second port per node on each client subnet (eth2 on A, eth3 on B). */
    dualPorts: z.boolean().default(false),
    /**
     * Links this host into the lab: a cluster network (node port clu0) and the storage network, with
     * this host at .254 on each, so processes run here (etcd, storage servers, a test) reach the nodes.
     */
    hostLinks: z.boolean().default(false),
  })
  .strict();
export type LabConfig = z.input<typeof labConfigSchema>;

/** A lab config that is not one: the message names every wrong field. */
export class LabConfigError extends Error {
  override name = "LabConfigError";
}

export interface LabNetwork {
  readonly name: LabNetworkName;
  /** The bridge in the switch namespace. */
  readonly bridge: string;
  /** 10.<octet>.<n>.0/24 */
  readonly cidr: string;
}

export interface LabPort {
  readonly name: LabPortName;
  readonly network: LabNetworkName;
  /** The port's fixed address (without the prefix length; every lab network is a /24). */
  readonly address: string;
  /** The other end of the veth pair: a port of the network's bridge, in the switch namespace. */
  readonly bridgePort: string;
}

export interface LabNode {
  readonly index: number;
  /** n1, n2, ...: what operators and fault commands call it. */
  readonly id: string;
  readonly namespace: string;
  readonly ports: readonly LabPort[];
}

export interface LabClient {
  readonly index: number;
  readonly id: string;
  readonly namespace: string;
  /** Its one port, eth0, on subnet A (odd index) or B (even index). */
  readonly port: LabPort;
  /** The other client subnet, reached through node 1 (which forwards): a route, not a default route. */
  readonly route: { readonly cidr: string; readonly via: string };
}

/** Addresses of a client subnet kept free for VIPs: no port of the lab has one. */
export interface LabVipPool {
  readonly subnet: LabSubnetName;
  readonly addresses: readonly string[];
}

/** A veth pair from this host's namespace to a bridge of the lab. */
export interface LabHostLink {
  readonly network: LabNetworkName;
  /** The host's end, in the host's namespace: "fl<tag>hc". */
  readonly name: string;
  readonly address: string;
  /** The bridge's end, in the switch namespace. */
  readonly bridgePort: string;
}

export interface LabTopology {
  readonly tag: string;
  readonly octet: number;
  readonly switchNamespace: string;
  readonly networks: Readonly<Record<LabNetworkName, LabNetwork>>;
  readonly hostLinks: readonly LabHostLink[];
  readonly nodes: readonly LabNode[];
  readonly clients: readonly LabClient[];
  readonly vipPools: Readonly<Record<LabSubnetName, LabVipPool>>;
}

/**
 * The default second octet for a tag: FNV-1a into 100..199. Labs never share a network (each has its
 * own switch namespace), so two tags that hash alike still work; distinct octets only keep addresses
 * in captures and logs unambiguous, and `octet` in the config settles a clash.
 */
export function labOctet(tag: string): number {
  let hash = 0x811c9dc5;
  for (const char of tag) hash = Math.imul(hash ^ (char.codePointAt(0) ?? 0), 0x01000193) >>> 0;
  return OCTET_HASHED_MIN + (hash % OCTET_HASHED_COUNT);
}

function hostLinkName(tag: string, network: "cluster" | "storage"): string {
  return `${labNamespacePrefix(tag)}h${network === "cluster" ? "c" : "s"}`;
}

/** The host's ends of a lab's host links (present only with `hostLinks`). */
export function labHostLinkNames(tag: string): string[] {
  return [hostLinkName(tag, "cluster"), hostLinkName(tag, "storage")];
}

export function labNamespacePrefix(tag: string): string {
  return `fl${tag}`;
}

/** The topology of a lab, or a LabConfigError naming every wrong field of `config`. */
export function labTopology(config: LabConfig): LabTopology {
  const parsed = labConfigSchema.safeParse(config);
  if (!parsed.success) {
    const problems = parsed.error.issues.map(
      (issue) => `${issue.path.join(".") || "config"}: ${issue.message}`,
    );
    throw new LabConfigError(`bad lab config: ${problems.join("; ")}`);
  }
  const { tag, nodes: nodeCount, clients: clientCount } = parsed.data;
  const octet = parsed.data.octet ?? labOctet(tag);
  const prefix = labNamespacePrefix(tag);
  const networkAddress = (network: LabNetworkName, host: number) =>
    `10.${octet}.${THIRD_OCTET[network]}.${host}`;
  const networkOf = (name: LabNetworkName): LabNetwork => ({
    name,
    bridge: BRIDGE[name],
    cidr: `${networkAddress(name, 0)}/24`,
  });
  const networks = {
    A: networkOf("A"),
    B: networkOf("B"),
    cluster: networkOf("cluster"),
    storage: networkOf("storage"),
  };
  const portSpecs = [
    ...LAB_NODE_PORTS,
    ...(parsed.data.dualPorts ? DUAL_PORTS : []),
    ...(parsed.data.hostLinks ? [CLUSTER_PORT] : []),
  ];
  const nodes = Array.from({ length: nodeCount }, (_, i): LabNode => {
    const id = `n${i + 1}`;
    const ports = portSpecs.map(
      ({ name, network, hostBase }): LabPort => ({
        name,
        network,
        address: networkAddress(network, hostBase + i + 1),
        bridgePort: `${id}${name}`,
      }),
    );
    return { index: i + 1, id, namespace: `${prefix}${id}`, ports };
  });
  const clients = Array.from({ length: clientCount }, (_, j): LabClient => {
    const id = `c${j + 1}`;
    const subnet: LabSubnetName = (j + 1) % 2 === 1 ? "A" : "B";
    const other: LabSubnetName = subnet === "A" ? "B" : "A";
    return {
      index: j + 1,
      id,
      namespace: `${prefix}${id}`,
      port: {
        name: "eth0",
        network: subnet,
        address: networkAddress(subnet, 200 + j + 1),
        bridgePort: `${id}eth0`,
      },
      route: { cidr: networks[other].cidr, via: networkAddress(subnet, 11) },
    };
  });
  const poolOf = (subnet: LabSubnetName): LabVipPool => ({
    subnet,
    addresses: Array.from({ length: VIP_HOST_MAX - VIP_HOST_MIN + 1 }, (_, k) =>
      networkAddress(subnet, VIP_HOST_MIN + k),
    ),
  });
  const hostLinks: LabHostLink[] = parsed.data.hostLinks
    ? (["cluster", "storage"] as const).map((network) => ({
        network,
        name: hostLinkName(tag, network),
        address: networkAddress(network, HOST_LINK_HOST),
        bridgePort: `host${network === "cluster" ? "C" : "S"}`,
      }))
    : [];
  const topology: LabTopology = {
    tag,
    octet,
    switchNamespace: `${prefix}sw`,
    networks,
    hostLinks,
    nodes,
    clients,
    vipPools: { A: poolOf("A"), B: poolOf("B") },
  };
  assertWellFormed(topology);
  return topology;
}

function assertWellFormed(topology: LabTopology): void {
  const ports = [
    ...topology.nodes.flatMap((n) => n.ports),
    ...topology.clients.map((c) => c.port),
    ...topology.hostLinks.map((l) => ({ name: l.name, bridgePort: l.bridgePort, address: l.address })),
  ];
  const names = [
    ...ports.flatMap((p) => [p.name, p.bridgePort]),
    ...Object.values(topology.networks).map((n) => n.bridge),
  ];
  for (const name of names)
    assert(name.length <= INTERFACE_NAME_CHARS_MAX, `interface name ${name} is too long`);
  const addresses = [
    ...ports.map((p) => p.address),
    ...topology.vipPools.A.addresses,
    ...topology.vipPools.B.addresses,
  ];
  assert(new Set(addresses).size === addresses.length, "lab addresses are not unique");
  const bridgePorts = ports.map((p) => p.bridgePort);
  assert(new Set(bridgePorts).size === bridgePorts.length, "bridge port names are not unique");
}

/** Every namespace of the lab: the switch first, as it must exist before any veth pair. */
export function labNamespaces(topology: LabTopology): string[] {
  return [
    topology.switchNamespace,
    ...topology.nodes.map((n) => n.namespace),
    ...topology.clients.map((c) => c.namespace),
  ];
}

/** The commands that build the lab in order; every namespace must be absent first (see teardownCommands). */
export function upCommands(topology: LabTopology): Argv[] {
  const sw = topology.switchNamespace;
  const commands: Argv[] = labNamespaces(topology).map((ns) => ["ip", "netns", "add", ns]);
  commands.push(["ip", "-n", sw, "link", "set", "lo", "up"]);
  for (const network of Object.values(topology.networks)) {
    // STP off (the default, said here because it matters): a port forwards as soon as it is attached,
    // which is what subnet-up and heal rely on.
    commands.push(["ip", "-n", sw, "link", "add", network.bridge, "type", "bridge", "stp_state", "0"]);
    commands.push(["ip", "-n", sw, "link", "set", network.bridge, "up"]);
  }
  for (const link of topology.hostLinks) {
    // Made here with the bridge's end put straight into the switch namespace; deleting that
    // namespace deletes the pair, so the lab's teardown needs nothing more.
    commands.push([
      "ip",
      "link",
      "add",
      link.name,
      "type",
      "veth",
      "peer",
      "name",
      link.bridgePort,
      "netns",
      sw,
    ]);
    commands.push([
      "ip",
      "-n",
      sw,
      "link",
      "set",
      link.bridgePort,
      "master",
      topology.networks[link.network].bridge,
    ]);
    commands.push(["ip", "-n", sw, "link", "set", link.bridgePort, "up"]);
    commands.push(["ip", "addr", "add", `${link.address}/24`, "dev", link.name]);
    commands.push(["ip", "link", "set", link.name, "up"]);
  }
  for (const node of topology.nodes) {
    commands.push(["ip", "-n", node.namespace, "link", "set", "lo", "up"]);
    // A node may route between the client subnets (clients reach the other subnet through node 1).
    commands.push(["ip", "netns", "exec", node.namespace, "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    // A node with two ports on one subnet has two routes to it: one whose port lost its link must
    // not be used (the kernel's default still may), or replies leave by the dead port.
    commands.push([
      "ip",
      "netns",
      "exec",
      node.namespace,
      "sysctl",
      "-qw",
      "net.ipv4.conf.all.ignore_routes_with_linkdown=1",
    ]);
    for (const port of node.ports) commands.push(...cableCommands(topology, node.namespace, port));
  }
  for (const client of topology.clients) {
    commands.push(["ip", "-n", client.namespace, "link", "set", "lo", "up"]);
    commands.push(...cableCommands(topology, client.namespace, client.port));
    const { cidr, via } = client.route;
    commands.push(["ip", "-n", client.namespace, "route", "add", cidr, "via", via, "dev", client.port.name]);
  }
  return commands;
}

/** A veth pair from `namespace` to its network's bridge, addressed and up at both ends. */
function cableCommands(topology: LabTopology, namespace: string, port: LabPort): Argv[] {
  const sw = topology.switchNamespace;
  const bridge = topology.networks[port.network].bridge;
  return [
    // Made in the switch namespace with the peer put straight into the node's: no name is ever
    // taken in the host's namespace, where it could clash with the host's or another lab's.
    [
      "ip",
      "-n",
      sw,
      "link",
      "add",
      port.bridgePort,
      "type",
      "veth",
      "peer",
      "name",
      port.name,
      "netns",
      namespace,
    ],
    ["ip", "-n", sw, "link", "set", port.bridgePort, "master", bridge],
    ["ip", "-n", sw, "link", "set", port.bridgePort, "up"],
    ["ip", "-n", namespace, "addr", "add", `${port.address}/24`, "dev", port.name],
    ["ip", "-n", namespace, "link", "set", port.name, "up"],
  ];
}

const LAB_NAMESPACE_SUFFIX = /^(?:sw|[nc][1-9]\d?)$/;

/** Which of `namespaces` belong to the lab tagged `tag` (of any size, so leftovers of a bigger lab too). */
export function labNamespacesIn(tag: string, namespaces: readonly string[]): string[] {
  const prefix = labNamespacePrefix(tag);
  return namespaces.filter(
    (ns) => ns.startsWith(prefix) && LAB_NAMESPACE_SUFFIX.test(ns.slice(prefix.length)),
  );
}

/** Deleting a namespace deletes the veth ends in it, and so their peers: namespaces are all there is. */
export function teardownCommands(tag: string, namespaces: readonly string[]): Argv[] {
  return labNamespacesIn(tag, namespaces).map((ns) => ["ip", "netns", "del", ns]);
}

/** How many nodes and clients the namespaces in `namespaces` make for `tag`, or undefined with no switch. */
export function labShapeIn(
  tag: string,
  namespaces: readonly string[],
): { readonly nodes: number; readonly clients: number } | undefined {
  const prefix = labNamespacePrefix(tag);
  const mine = new Set(labNamespacesIn(tag, namespaces));
  if (!mine.has(`${prefix}sw`)) return undefined;
  const countOf = (letter: string): number => {
    let count = 0;
    while (mine.has(`${prefix}${letter}${count + 1}`)) count += 1;
    return count;
  };
  return { nodes: countOf("n"), clients: countOf("c") };
}
