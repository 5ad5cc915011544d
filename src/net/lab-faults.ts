/**
 * Faults of the network lab, as data, and the `ip` commands that make and undo them. Every fault acts
 * on the bridge side of a node's veth pair (in the switch namespace), so the node sees what a real
 * node would: a cable pulled (carrier lost), or a port that stays up while its switch stops passing it.
 */
import { unreachable } from "../util/assert.ts";
import {
  type Argv,
  LAB_PORT_NAMES,
  type LabNode,
  type LabPort,
  type LabPortName,
  type LabSubnetName,
  type LabTopology,
} from "./lab-topology.ts";

export type LabFault =
  /** The bridge side goes down: the node's port loses carrier (operstate not UP). */
  | { readonly kind: "port-down" | "port-up"; readonly node: string; readonly port: LabPortName }
  /**
   * The bridge side of each of the node's ports on the subnet leaves its bridge: the ports stay UP,
   * but nothing passes between the node and the subnet.
   */
  | { readonly kind: "subnet-down" | "subnet-up"; readonly node: string; readonly subnet: LabSubnetName }
  /** The same for the storage network. */
  | { readonly kind: "storage-cut" | "storage-heal"; readonly node: string }
  /** Every node port up and on its bridge. */
  | { readonly kind: "heal" };

export type LabFaultKind = LabFault["kind"];

export const LAB_FAULT_KINDS: readonly LabFaultKind[] = [
  "port-down",
  "port-up",
  "subnet-down",
  "subnet-up",
  "storage-cut",
  "storage-heal",
  "heal",
];

/** A fault that names a node, port or subnet the lab does not have. */
export class LabFaultError extends Error {
  override name = "LabFaultError";
}

export function isLabPortName(text: string): text is LabPortName {
  return (LAB_PORT_NAMES as readonly string[]).includes(text);
}

export function isLabSubnetName(text: string): text is LabSubnetName {
  return text === "A" || text === "B";
}

/** The commands for `fault`, or a LabFaultError when it names what the lab does not have. */
export function faultCommands(topology: LabTopology, fault: LabFault): Argv[] {
  const attach = (port: LabPort) => linkSet(topology, port, "master", topology.networks[port.network].bridge);
  const detach = (port: LabPort) => linkSet(topology, port, "nomaster");
  const setLink = (port: LabPort, state: "up" | "down") => linkSet(topology, port, state);
  switch (fault.kind) {
    case "port-down":
    case "port-up":
      return [
        setLink(portOf(nodeOf(topology, fault.node), fault.port), fault.kind === "port-up" ? "up" : "down"),
      ];
    case "subnet-down":
    case "subnet-up":
      return portsOn(nodeOf(topology, fault.node), fault.subnet).map((port) =>
        fault.kind === "subnet-up" ? attach(port) : detach(port),
      );
    case "storage-cut":
    case "storage-heal": {
      const port = portOn(nodeOf(topology, fault.node), "storage");
      return [fault.kind === "storage-heal" ? attach(port) : detach(port)];
    }
    case "heal":
      // Attaching a port to the bridge it is on already is a no-op in the kernel, so heal needs no state.
      return topology.nodes.flatMap((node) =>
        node.ports.flatMap((port) => [attach(port), setLink(port, "up")]),
      );
    default:
      return unreachable(fault, "lab fault kind");
  }
}

/** Every fault is an `ip link set` of the bridge side of a node's port, in the switch namespace. */
function linkSet(topology: LabTopology, port: LabPort, ...change: readonly string[]): Argv {
  return ["ip", "-n", topology.switchNamespace, "link", "set", port.bridgePort, ...change];
}

/** `n1` (or `1`) to the node. */
function nodeOf(topology: LabTopology, text: string): LabNode {
  const id = /^\d+$/.test(text) ? `n${text}` : text;
  const node = topology.nodes.find((n) => n.id === id);
  if (node === undefined) {
    const ids = topology.nodes.map((n) => n.id).join(", ");
    throw new LabFaultError(`lab ${topology.tag} has no node ${JSON.stringify(text)} (its nodes: ${ids})`);
  }
  return node;
}

function portOf(node: LabNode, name: LabPortName): LabPort {
  const port = node.ports.find((p) => p.name === name);
  if (port === undefined) throw new LabFaultError(`node ${node.id} has no port ${name}`);
  return port;
}

function portOn(node: LabNode, network: LabPort["network"]): LabPort {
  return portsOn(node, network)[0] as LabPort;
}

function portsOn(node: LabNode, network: LabPort["network"]): LabPort[] {
  const ports = node.ports.filter((p) => p.network === network);
  if (ports.length === 0) throw new LabFaultError(`node ${node.id} has no port on ${network}`);
  return ports;
}
