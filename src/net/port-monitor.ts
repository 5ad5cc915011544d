/**
 * Watches a node's physical ports: link state from the kernel (/sys/class/net/<port>/operstate, which
 * a node in a network namespace sees for its own namespace when sysfs is mounted for it, as
 * `ip netns exec` does) and bytes per second in and out, decayed. Read on the node's health tick.
 */

import { readFile } from "node:fs/promises";
import { networkInterfaces } from "node:os";
import { ByteRates } from "./byte-rates.ts";
import { parseSubnet, subnetContains } from "./cidr.ts";
import type { PortState } from "./model.ts";

export interface PortConfig {
  readonly name: string;
  /** The client subnet the port is cabled to ("10.7.1.0/24"), or null (a storage or cluster port). */
  readonly subnet: string | null;
  /**
   * Addresses to probe beside the other nodes' ports on the subnet (a gateway, say): the port counts
   * as cut off when none answers (see subnet-probe.ts).
   */
  readonly probes?: readonly string[];
}

/** One reading of a port from sysfs. */
export interface PortReading {
  readonly up: boolean;
  readonly bytes: number;
}

/** The kernel's operstate: "up" carries traffic; "unknown" is what veth and loopback report when up. */
export function parseOperstate(text: string): boolean {
  const state = text.trim();
  return state === "up" || state === "unknown";
}

export type PortReader = (name: string) => Promise<PortReading>;

/** Reads a port from /sys/class/net; a port that is gone reads as down. */
export const sysfsPortReader: PortReader = async (name) => {
  const base = `/sys/class/net/${name}`;
  try {
    const [state, carrier, rx, tx] = await Promise.all([
      readFile(`${base}/operstate`, "utf8"),
      readFile(`${base}/carrier`, "utf8").catch(() => "0"),
      readFile(`${base}/statistics/rx_bytes`, "utf8"),
      readFile(`${base}/statistics/tx_bytes`, "utf8"),
    ]);
    return { up: parseOperstate(state) && carrier.trim() === "1", bytes: Number(rx) + Number(tx) };
  } catch {
    return { up: false, bytes: 0 };
  }
};

/** An interface's IPv4 addresses with their prefix lengths. */
export type AddressReader = (name: string) => readonly { address: string; prefixLength: number }[];

export const osAddressReader: AddressReader = (name) =>
  (networkInterfaces()[name] ?? []).flatMap((a) =>
    a.family === "IPv4" && a.cidr !== null
      ? [{ address: a.address, prefixLength: Number(a.cidr.split("/")[1]) }]
      : [],
  );

/**
 * The port's own address: on its subnet, and not a host route (VIPs are /32s; the port's address has
 * the subnet's prefix).
 */
export function portAddress(
  addresses: readonly { address: string; prefixLength: number }[],
  subnet: string | null,
): string | null {
  if (subnet === null) return null;
  const parsed = parseSubnet(subnet);
  return (
    addresses.find((a) => a.prefixLength === parsed.prefix && subnetContains(parsed, a.address))?.address ??
    null
  );
}

export class PortMonitor {
  private readonly nodeId: string;
  private readonly ports: readonly PortConfig[];
  private readonly read: PortReader;
  private readonly readAddresses: AddressReader;
  private readonly rates = new ByteRates();
  private readonly last = new Map<string, { rate: number; up: boolean; address: string | null }>();

  constructor(
    nodeId: string,
    ports: readonly PortConfig[],
    read: PortReader = sysfsPortReader,
    readAddresses: AddressReader = osAddressReader,
  ) {
    this.nodeId = nodeId;
    this.ports = ports;
    this.read = read;
    this.readAddresses = readAddresses;
  }

  /** Reads every port now and folds the reading into the rates. */
  async sample(nowMs = performance.now()): Promise<PortState[]> {
    const readings = await Promise.all(this.ports.map((p) => this.read(p.name)));
    this.ports.forEach((port, i) => {
      const reading = readings[i]!;
      const rate = this.rates.fold(port.name, reading.bytes, nowMs);
      const address = portAddress(this.readAddresses(port.name), port.subnet);
      this.last.set(port.name, { rate, up: reading.up, address });
    });
    return this.current();
  }

  /** The last sample, without reading (ports never read count as down); `up` is the link's. */
  current(): PortState[] {
    return this.ports.map((port) => {
      const last = this.last.get(port.name);
      return {
        nodeId: this.nodeId,
        name: port.name,
        subnet: port.subnet,
        up: last?.up ?? false,
        linkUp: last?.up ?? false,
        address: last?.address ?? null,
        loadBytesPerSec: Math.round(last?.rate ?? 0),
      };
    });
  }
}
