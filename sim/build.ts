/**
 * Builders for planner states with sensible defaults: tests name only what matters to them, and the
 * simulation and the benchmark build large clusters from a seed.
 */
import type { ClusterNode, NodeId, Vserver } from "../src/cluster/model.ts";
import type { Random } from "../src/util/random.ts";

const GIB = 1024 ** 3;

/** An alive, enabled filer+storage node that never died, with room for 10 vservers. */
export function makeNode(id: NodeId, fields: Partial<Omit<ClusterNode, "id">> = {}): ClusterNode {
  return {
    id,
    roles: ["filer", "storage"],
    alive: true,
    sinceMs: 0,
    hasDied: false,
    operatorState: "enabled",
    vserversMax: 10,
    load: { loadPerCore: 0.5, memoryFreeBytes: 8 * GIB },
    reaches: [],
    ...fields,
  };
}

/**
 * A vserver of priority 0, unpinned, with two VIPs and one volume named after its id, placed on
 * `node` (generation 1, since 0) or unplaced (generation 0).
 */
export function makeVserver(
  id: string,
  node: NodeId | null,
  fields: Partial<Omit<Vserver, "id">> = {},
): Vserver {
  return {
    id,
    name: `name-${id}`,
    priority: 0,
    pinned: false,
    vips: [`vip-${id}-a`, `vip-${id}-b`],
    volumes: [`vol-${id}`],
    placement: { node, generation: node === null ? 0 : 1, sinceMs: 0 },
    blocked: null,
    ...fields,
  };
}

/** Measured load that differs between nodes, so tie-breaks are exercised. */
export function randomLoad(random: Random): ClusterNode["load"] {
  return { loadPerCore: random.int(200) / 100, memoryFreeBytes: (1 + random.int(64)) * GIB };
}
