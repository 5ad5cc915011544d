/**
 * Port balancing on one node (pure): when its busiest good port carries more than `startRatio`
 * times the mean of its good ports on the same subnet, VIPs move from it to the least loaded of them,
 * the VIP whose load comes closest to half the gap first, until the busiest is within `stopRatio`
 * of the mean or no move takes a tenth off the busier of the two ports (a VIP carrying all of a
 * port's load stays: moving it would only swap the ports). The dead-band between the two keeps a node from flapping;
 * at most `movesMax` moves per plan.
 */
import { subnetOf } from "./cidr.ts";
import type { NetAction, PortState, VipPlacement } from "./model.ts";

export interface PortBalancePolicy {
  readonly startRatio: number;
  readonly stopRatio: number;
  readonly movesMax: number;
  /** Below this many bytes/s on the busiest port, nothing is worth moving. */
  readonly floorBytesPerSec: number;
}

export const PORT_BALANCE_DEFAULT: PortBalancePolicy = {
  startRatio: 1.5,
  stopRatio: 1.2,
  movesMax: 4,
  floorBytesPerSec: 1024 * 1024,
};

/** The least share of the hot port's load a move must take off the busier port of the two. */
const MOVE_GAIN_MIN = 0.1;

export function planPortBalance(
  nodeId: string,
  ports: readonly PortState[],
  vips: readonly VipPlacement[],
  policy: PortBalancePolicy = PORT_BALANCE_DEFAULT,
): NetAction[] {
  const actions: NetAction[] = [];
  const mine = ports.filter((p) => p.nodeId === nodeId && p.up && p.subnet !== null);
  const subnets = [...new Set(mine.map((p) => p.subnet as string))].sort();
  for (const subnet of subnets) {
    const group = mine.filter((p) => p.subnet === subnet);
    if (group.length < 2) continue;
    const load = new Map(group.map((p) => [p.name, p.loadBytesPerSec]));
    const onPort = new Map<string, VipPlacement[]>(group.map((p) => [p.name, []]));
    for (const v of vips) {
      if (v.nodeId !== nodeId || v.port === null || subnetOf(v.vip, [subnet]) === undefined) continue;
      onPort.get(v.port)?.push(v);
    }
    const mean = (): number => [...load.values()].reduce((a, b) => a + b, 0) / group.length;
    let started = false;
    while (actions.length < policy.movesMax) {
      const sorted = [...load.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
      const [hot, hotLoad] = sorted[0] as [string, number];
      const [cool, coolLoad] = sorted[sorted.length - 1] as [string, number];
      const ratio = mean() > 0 ? hotLoad / mean() : 1;
      if (hotLoad < policy.floorBytesPerSec) break;
      if (!started && ratio <= policy.startRatio) break;
      if (started && ratio <= policy.stopRatio) break;
      started = true;
      const gap = hotLoad - coolLoad;
      // A VIP moved must bring the busier of the pair down by a tenth at least: one carrying nearly
      // all of the hot port's load would only make the cool port the hot one, and move back later.
      const helps = (load: number): boolean =>
        Math.max(hotLoad - load, coolLoad + load) <= hotLoad * (1 - MOVE_GAIN_MIN);
      const candidate = (onPort.get(hot) ?? [])
        .filter((v) => v.loadBytesPerSec > 0 && helps(v.loadBytesPerSec))
        .sort(
          (a, b) =>
            Math.abs(a.loadBytesPerSec - gap / 2) - Math.abs(b.loadBytesPerSec - gap / 2) ||
            a.vip.localeCompare(b.vip),
        )[0];
      if (candidate === undefined) break;
      onPort.set(
        hot,
        (onPort.get(hot) ?? []).filter((v) => v !== candidate),
      );
      onPort.get(cool)?.push(candidate);
      load.set(hot, hotLoad - candidate.loadBytesPerSec);
      load.set(cool, coolLoad + candidate.loadBytesPerSec);
      actions.push({
        kind: "move-vip",
        vip: candidate.vip,
        nodeId,
        fromPort: hot,
        toPort: cool,
        reason: `port ${hot} carries ${ratio.toFixed(2)}x the mean of ${nodeId}'s ports on ${subnet}; ${cool} is the least loaded`,
      });
    }
  }
  return actions;
}
