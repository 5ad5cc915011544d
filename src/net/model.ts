/**
 * What the network rules see: each node's physical ports (their subnet, link state and load), which
 * client subnets and storage servers each node reaches, and where each VIP is. Published by node
 * health; the rules beside it are pure functions of these values.
 */

export interface PortState {
  readonly nodeId: string;
  /** The interface name on its node: "eth0". */
  readonly name: string;
  /** The client subnet it is on, "10.7.1.0/24"; null for a port on no client subnet. */
  readonly subnet: string | null;
  /** Usable: link up and, where the port has probe targets, reaching one of them. */
  readonly up: boolean;
  /**
   * Link up by the kernel's say. A port with link but `up` false is cut off beyond its cable (a
   * switch that stops passing it): its subnet can be reached through a router node (subnet-route.ts),
   * which a port with no link cannot be used for.
   */
  readonly linkUp: boolean;
  /** Its own address on its subnet (not a VIP), for routes through it; null when it has none. */
  readonly address: string | null;
  /** Bytes per second in and out, decayed. */
  readonly loadBytesPerSec: number;
}

export interface VipPlacement {
  readonly vip: string;
  readonly vserverId: string;
  readonly nodeId: string;
  /** The port it is on; null while it is not on any (being moved). */
  readonly port: string | null;
  /** Its measured traffic, bytes per second. */
  readonly loadBytesPerSec: number;
}

export interface NodeReach {
  readonly nodeId: string;
  readonly live: boolean;
  /** Client subnets this node reaches clients on (a probe's answer, not only link state). */
  readonly clientSubnets: readonly string[];
  /** Storage servers this node reaches over the storage network. */
  readonly storageServers: readonly string[];
}

/** A rule's decision: every action says why, for `status` and the event log. */
export type NetAction =
  | {
      readonly kind: "move-vip";
      readonly vip: string;
      readonly nodeId: string;
      readonly fromPort: string | null;
      readonly toPort: string;
      readonly reason: string;
    }
  | {
      readonly kind: "move-vserver";
      readonly vserverId: string;
      readonly fromNode: string;
      /** null: the planner picks a node (any with a good port on the VIPs' subnets). */
      readonly toNode: string | null;
      readonly reason: string;
    }
  | ({ readonly kind: "route-through" } & SubnetRoute)
  | { readonly kind: "stay"; readonly subject: string; readonly reason: string };

/**
 * A VIP answered by a router node for an owner node cut off from the VIP's subnet: the router takes
 * the VIP's traffic on its port on that subnet (proxy ARP) and forwards it over a subnet both share;
 * the owner sends the VIP's replies back the same way.
 */
export interface SubnetRoute {
  readonly vip: string;
  readonly vserverId: string;
  /** The VIP's (and its clients') subnet. */
  readonly subnet: string;
  /** The node that still reaches the client's subnet and forwards to the vserver's node. */
  readonly routerNode: string;
  /** The router's port on `subnet`, where it answers for the VIP. */
  readonly routerPort: string;
  /** The router's port and address on `viaSubnet`. */
  readonly routerViaPort: string;
  readonly routerAddress: string;
  readonly ownerNode: string;
  /** The owner's port and address on `viaSubnet`. */
  readonly ownerViaPort: string;
  readonly ownerAddress: string;
  /** The subnet router and owner share, over which the router forwards. */
  readonly viaSubnet: string;
  readonly reason: string;
}
