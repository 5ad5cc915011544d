/** A route through a router node for unit tests: n2 answers on A for n1's VIP, forwarding over B. */
import type { SubnetRoute } from "../../src/net/model.ts";

export function subnetRoute(overrides: Partial<SubnetRoute> = {}): SubnetRoute {
  return {
    vip: "10.7.1.50",
    vserverId: "vs1",
    subnet: "10.7.1.0/24",
    routerNode: "n2",
    routerPort: "eth0",
    routerViaPort: "eth1",
    routerAddress: "10.7.2.12",
    ownerNode: "n1",
    ownerViaPort: "eth1",
    ownerAddress: "10.7.2.11",
    viaSubnet: "10.7.2.0/24",
    reason: "test",
    ...overrides,
  };
}
