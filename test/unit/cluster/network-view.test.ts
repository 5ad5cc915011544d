import assert from "node:assert/strict";
import { test } from "node:test";
import type { NodeRecord } from "../../../src/cluster/catalog.ts";
import { emptySnapshot } from "../../../src/cluster/cluster-view.ts";
import { peerAddresses, withoutRoutedSubnets } from "../../../src/cluster/network-view.ts";
import { nodeRecord } from "../../support/node-record.ts";
import { subnetRoute } from "../../support/subnet-route.ts";

const A = "10.7.1.0/24";

const nodeWithPorts = (nodeId: string, ports: NodeRecord["ports"]) => nodeRecord(nodeId, { ports });

const port = (nodeId: string, name: string, address: string, up = true) => ({
  nodeId,
  name,
  subnet: A,
  up,
  linkUp: true,
  address,
  loadBytesPerSec: 0,
});

test("a port probes one usable address of each other node on its subnet", () => {
  const snapshot = emptySnapshot();
  snapshot.nodes.set("n1", nodeWithPorts("n1", [port("n1", "eth0", "10.7.1.11")]));
  snapshot.nodes.set(
    "n2",
    nodeWithPorts("n2", [port("n2", "eth0", "10.7.1.12"), port("n2", "eth2", "10.7.1.32")]),
  );
  snapshot.nodes.set(
    "n3",
    nodeWithPorts("n3", [port("n3", "eth0", "10.7.1.13", false), port("n3", "eth2", "10.7.1.33")]),
  );
  assert.deepEqual(peerAddresses(snapshot, "n1", A), ["10.7.1.12", "10.7.1.33"]);
  assert.deepEqual(peerAddresses(undefined, "n1", A), []);
});

test("a routed VIP's subnet is no longer required of its owner, and only of its owner", () => {
  const route = subnetRoute();
  const requires = [`subnet:${A}`, "storage:s1"];
  assert.deepEqual(withoutRoutedSubnets(requires, "vs1", "n1", [route]), ["storage:s1"]);
  assert.deepEqual(withoutRoutedSubnets(requires, "vs1", "n3", [route]), requires);
  assert.deepEqual(withoutRoutedSubnets(requires, "vs2", "n1", [route]), requires);
});
