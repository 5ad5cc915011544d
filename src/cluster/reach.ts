/**
 * What a vserver requires of its node's reach (pure): the client subnet of each of its VIPs and
 * every storage server holding a replica of its volumes' chunks, each only as far as some live node
 * reaches it. A requirement nobody meets (a subnet down everywhere, a storage server dead) would move
 * nothing anywhere useful, so it is left to the failure's own handling (re-replication, the VIP's
 * clients waiting) instead of blocking every vserver that needs it.
 */
import { subnetOf } from "../net/cidr.ts";

export const SUBNET_LABEL = "subnet:";
export const STORAGE_LABEL = "storage:";

export function subnetLabel(cidr: string): string {
  return `${SUBNET_LABEL}${cidr}`;
}

export function storageLabel(serverId: string): string {
  return `${STORAGE_LABEL}${serverId}`;
}

export interface ReachInput {
  /** Every label some live node reaches. */
  readonly reachedByLive: ReadonlySet<string>;
  /** Storage servers holding each volume's chunks; a volume not known here requires nothing. */
  readonly serversOf: (volumeId: string) => readonly string[] | undefined;
}

/** The client subnets (cidrs) that live nodes publish, in a stable order. */
export function liveSubnets(reachedByLive: ReadonlySet<string>): string[] {
  return [...reachedByLive]
    .filter((label) => label.startsWith(SUBNET_LABEL))
    .map((label) => label.slice(SUBNET_LABEL.length))
    .sort();
}

/** The requirement labels of a vserver with these VIPs and volumes, sorted and without repeats. */
export function vserverRequires(
  vips: readonly string[],
  volumes: readonly string[],
  input: ReachInput,
): string[] {
  const subnets = liveSubnets(input.reachedByLive);
  const labels = new Set<string>();
  for (const vip of vips) {
    const subnet = subnets.length === 0 ? undefined : subnetOfSafe(vip, subnets);
    if (subnet !== undefined) labels.add(subnetLabel(subnet));
  }
  for (const volumeId of volumes)
    for (const serverId of input.serversOf(volumeId) ?? []) {
      const label = storageLabel(serverId);
      if (input.reachedByLive.has(label)) labels.add(label);
    }
  return [...labels].sort();
}

/** A VIP that is no IPv4 address (a test's name) is on no subnet. */
function subnetOfSafe(vip: string, subnets: readonly string[]): string | undefined {
  try {
    return subnetOf(vip, subnets);
  } catch {
    return undefined;
  }
}

/**
 * How long a node must have lacked a label before the planner counts it lacking (see ReachMemory): a
 * storage server's reach comes from probes, which a busy moment can fail; a subnet's from the kernel's
 * link state, which does not flap by itself, so its grace only covers nodes publishing out of step.
 */
export const REACH_LOSS_GRACE_MS_DEFAULT = 3000;
export const SUBNET_LOSS_GRACE_MS_DEFAULT = 500;

/** The default grace of one label. */
export function defaultGraceMs(label: string): number {
  return label.startsWith(SUBNET_LABEL) ? SUBNET_LOSS_GRACE_MS_DEFAULT : REACH_LOSS_GRACE_MS_DEFAULT;
}

/**
 * Smooths each node's published reach over time: a label some live node reaches counts as reached by
 * a node that does not publish it until it has been missing there for `graceMs`. When a storage server
 * dies every node loses it, but not in the same instant; and a node that just started publishes its
 * reach before it has heard of every server. Without the grace, the node that is a moment behind the
 * rest would look cut off and have its vservers moved for nothing.
 */
export class ReachMemory {
  private readonly graceMs: (label: string) => number;
  /** Per node: since when each label it does not publish has been missing there. */
  private readonly missingSince = new Map<string, Map<string, number>>();

  constructor(graceMs: number | ((label: string) => number) = defaultGraceMs) {
    this.graceMs = typeof graceMs === "number" ? () => graceMs : graceMs;
  }

  /**
   * The labels the planner counts `nodeId` as reaching: what it publishes, plus those of `universe`
   * (what live nodes reach) that it has lacked for less than the grace.
   */
  effective(
    nodeId: string,
    published: readonly string[],
    universe: ReadonlySet<string>,
    nowMs: number,
  ): string[] {
    const have = new Set(published);
    const since = this.missingSince.get(nodeId) ?? new Map<string, number>();
    for (const label of [...since.keys()]) if (have.has(label) || !universe.has(label)) since.delete(label);
    const graced: string[] = [];
    for (const label of universe) {
      if (have.has(label)) continue;
      const from = since.get(label) ?? nowMs;
      since.set(label, from);
      if (nowMs - from < this.graceMs(label)) graced.push(label);
    }
    this.missingSince.set(nodeId, since);
    return [...published, ...graced];
  }

  /** Forgets a node that is gone (its next record starts afresh). */
  forget(nodeId: string): void {
    this.missingSince.delete(nodeId);
  }
}
