/**
 * One number per storage server for how loaded it is, from what its load monitor measures. Pure.
 *
 *   load = 0.35 · requests/s ÷ mean requests/s of the group
 *        + 0.25 · bytes/s (read + written) ÷ mean bytes/s of the group
 *        + 0.15 · p99 latency ÷ mean p99 latency of the group
 *        + 0.15 · CPU busy share (0..1, of its cores)
 *        + 0.10 · capacity used share (0..1)
 *
 * The request, byte and latency terms are relative to the group (1 is an average server), so a
 * measure of 1 is a server carrying its fair share; the CPU and capacity terms are absolute, so a
 * server near full or pegged stands out even in a quiet group. A group with no traffic compares only
 * CPU and capacity. A server serving more than `hotShare` (default 1.5) times the mean request rate is
 * flagged hot.
 */
export interface ServerLoad {
  readonly serverId: string;
  readonly requestsPerSec: number;
  readonly readBytesPerSec: number;
  readonly writeBytesPerSec: number;
  /** The 99th percentile of its request latency over the window, ms. */
  readonly latencyP99Ms: number;
  /** 0..1: the share of its cores kept busy. */
  readonly cpuBusy: number;
  readonly capacityBytes: number;
  readonly usedBytes: number;
}

export interface LoadMeasure {
  readonly serverId: string;
  readonly measure: number;
  /** Its request rate over the group's mean (1 when the group is idle). */
  readonly requestShare: number;
  readonly hot: boolean;
}

export const LOAD_WEIGHTS = Object.freeze({
  requests: 0.35,
  bytes: 0.25,
  latency: 0.15,
  cpu: 0.15,
  capacity: 0.1,
});

export const HOT_SHARE_DEFAULT = 1.5;

const relative = (value: number, mean: number): number => (mean > 0 ? value / mean : 0);
const share = (value: number): number => Math.min(1, Math.max(0, value));

export function measureLoads(loads: readonly ServerLoad[], hotShare = HOT_SHARE_DEFAULT): LoadMeasure[] {
  if (loads.length === 0) return [];
  const mean = (f: (l: ServerLoad) => number): number =>
    loads.reduce((sum, l) => sum + f(l), 0) / loads.length;
  const bytesOf = (l: ServerLoad): number => l.readBytesPerSec + l.writeBytesPerSec;
  const requests = mean((l) => l.requestsPerSec);
  const bytes = mean(bytesOf);
  const latency = mean((l) => l.latencyP99Ms);
  return loads.map((l) => {
    const requestShare = requests > 0 ? l.requestsPerSec / requests : 1;
    const measure =
      LOAD_WEIGHTS.requests * relative(l.requestsPerSec, requests) +
      LOAD_WEIGHTS.bytes * relative(bytesOf(l), bytes) +
      LOAD_WEIGHTS.latency * relative(l.latencyP99Ms, latency) +
      LOAD_WEIGHTS.cpu * share(l.cpuBusy) +
      LOAD_WEIGHTS.capacity * share(l.capacityBytes > 0 ? l.usedBytes / l.capacityBytes : 1);
    return { serverId: l.serverId, measure, requestShare, hot: requestShare > hotShare };
  });
}
