/**
 * Watches a node's physical ports: link state from the kernel (/sys/class/net/<port>/operstate, which
 * a node in a network namespace sees for its own namespace when sysfs is mounted for it, as
 * `ip netns exec` does) and bytes per second in and out, decayed. Read on the node's health tick.
 */
import { readFile } from "node:fs/promises";
import type { PortState } from "./model.ts";

export interface PortConfig {
  readonly name: string;
  /** The client subnet the port is cabled to ("10.7.1.0/24"), or null (a storage or cluster port). */
  readonly subnet: string | null;
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

/** The decay of the bytes/s estimate: half its weight is the last 5 s. */
const HALF_LIFE_MS = 5000;

export class PortMonitor {
  private readonly nodeId: string;
  private readonly ports: readonly PortConfig[];
  private readonly read: PortReader;
  private readonly last = new Map<string, { bytes: number; atMs: number; rate: number; up: boolean }>();

  constructor(nodeId: string, ports: readonly PortConfig[], read: PortReader = sysfsPortReader) {
    this.nodeId = nodeId;
    this.ports = ports;
    this.read = read;
  }

  /** Reads every port now and folds the reading into the rates. */
  async sample(nowMs = performance.now()): Promise<PortState[]> {
    const readings = await Promise.all(this.ports.map((p) => this.read(p.name)));
    this.ports.forEach((port, i) => {
      const reading = readings[i]!;
      const before = this.last.get(port.name);
      let rate = before?.rate ?? 0;
      if (before !== undefined && nowMs > before.atMs && reading.bytes >= before.bytes) {
        const instant = ((reading.bytes - before.bytes) * 1000) / (nowMs - before.atMs);
        const keep = 0.5 ** ((nowMs - before.atMs) / HALF_LIFE_MS);
        rate = keep * rate + (1 - keep) * instant;
      }
      this.last.set(port.name, { bytes: reading.bytes, atMs: nowMs, rate, up: reading.up });
    });
    return this.current();
  }

  /** The last sample, without reading (ports never read count as down). */
  current(): PortState[] {
    return this.ports.map((port) => {
      const last = this.last.get(port.name);
      return {
        nodeId: this.nodeId,
        name: port.name,
        subnet: port.subnet,
        up: last?.up ?? false,
        loadBytesPerSec: Math.round(last?.rate ?? 0),
      };
    });
  }
}
