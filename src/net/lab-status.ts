/**
 * The lab's state as read back from the kernel: `ip -j` output parsed into typed values, and each
 * node port's report assembled from its two ends. Pure: lab.ts runs the commands.
 */
import { z } from "zod";
import type { LabNetworkName, LabPortName, LabTopology } from "./lab-topology.ts";

/** `ip -j netns list` (it prints nothing at all, not [], on some versions when there is none). */
const netnsListSchema = z.array(z.object({ name: z.string() }).loose());

const linkSchema = z
  .object({
    ifname: z.string(),
    flags: z.array(z.string()).default([]),
    operstate: z.string().default("UNKNOWN"),
    master: z.string().optional(),
    addr_info: z
      .array(
        z
          .object({ family: z.string(), local: z.string().optional(), prefixlen: z.number().optional() })
          .loose(),
      )
      .default([]),
  })
  .loose();
const linksSchema = z.array(linkSchema);
export type IpLink = z.infer<typeof linkSchema>;

/** Output of an `ip` command that is not what it should be. */
export class IpOutputError extends Error {
  override name = "IpOutputError";
}

function parseJson<T>(schema: z.ZodType<T>, text: string, what: string): T {
  let raw: unknown;
  try {
    raw = text.trim() === "" ? [] : JSON.parse(text);
  } catch (error) {
    throw new IpOutputError(`${what}: not JSON (${error instanceof Error ? error.message : String(error)})`);
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map(
      (issue) => `${issue.path.join(".") || "output"}: ${issue.message}`,
    );
    throw new IpOutputError(`${what}: unexpected output (${problems.join("; ")})`);
  }
  return parsed.data;
}

export function parseNetnsList(text: string): string[] {
  return parseJson(netnsListSchema, text, "ip -j netns list").map((ns) => ns.name);
}

/** `ip -j link show` or `ip -j addr show` (the latter adds addr_info). */
export function parseLinks(text: string, what: string): IpLink[] {
  return parseJson(linksSchema, text, what);
}

export function ipv4Addresses(link: IpLink): string[] {
  return link.addr_info.flatMap((a) => (a.family === "inet" && a.local !== undefined ? [a.local] : []));
}

export interface LabPortStatus {
  readonly node: string;
  readonly port: LabPortName;
  readonly network: LabNetworkName;
  /** The port's fixed lab address. */
  readonly address: string;
  /** Every IPv4 address on the port now: the fixed one, and VIPs that something added. */
  readonly addresses: readonly string[];
  /** The kernel's operstate of the node's end: UP, DOWN, LOWERLAYERDOWN, ... ("MISSING": no such link). */
  readonly operstate: string;
  /** Whether the bridge side is a port of its network's bridge (false after subnet-down or storage-cut). */
  readonly attached: boolean;
  /** Whether the bridge side is administratively up (false after port-down). */
  readonly bridgePortUp: boolean;
}

export interface LabStatus {
  readonly tag: string;
  readonly octet: number;
  readonly ports: readonly LabPortStatus[];
}

/** Each node port's status from the links of each node namespace and of the switch namespace. */
export function labStatusOf(
  topology: LabTopology,
  nodeLinks: ReadonlyMap<string, readonly IpLink[]>,
  switchLinks: readonly IpLink[],
): LabStatus {
  const bridgeSide = new Map(switchLinks.map((link) => [link.ifname, link]));
  const ports = topology.nodes.flatMap((node) => {
    const links = new Map((nodeLinks.get(node.namespace) ?? []).map((link) => [link.ifname, link]));
    return node.ports.map((port): LabPortStatus => {
      const link = links.get(port.name);
      const peer = bridgeSide.get(port.bridgePort);
      return {
        node: node.id,
        port: port.name,
        network: port.network,
        address: port.address,
        addresses: link === undefined ? [] : ipv4Addresses(link),
        operstate: link?.operstate ?? "MISSING",
        attached: peer?.master === topology.networks[port.network].bridge,
        bridgePortUp: peer?.flags.includes("UP") ?? false,
      };
    });
  });
  return { tag: topology.tag, octet: topology.octet, ports };
}

/** The second octet of a lab address (10.<octet>.n.h), or undefined when `address` is not one. */
export function octetOfLabAddress(address: string): number | undefined {
  const match = /^10\.(\d{1,3})\.\d{1,3}\.\d{1,3}$/.exec(address);
  if (match === null) return undefined;
  const octet = Number(match[1]);
  return octet <= 255 ? octet : undefined;
}
