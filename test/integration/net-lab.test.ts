/**
 * The network lab on real namespaces: who reaches whom after `up`, and after each fault and its undo.
 * Reachability is a TCP connect to a listener in each node (see test/support/lab-reach.ts).
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { listNamespaces, NetworkLab } from "../../src/net/lab.ts";
import type { LabPortName } from "../../src/net/lab-topology.ts";
import { reaches, startListener } from "../support/lab-reach.ts";
import { labSkipReason } from "../support/lab-skip.ts";
import { until } from "../support/until.ts";

/** Unique to this run, so a parallel test file or an operator's lab ("lab") is never touched. */
const TAG = `t${(process.pid % 10_000).toString(36)}`;
/** The kernel reports carrier changes up to a second late (linkwatch). */
const SETTLE_MS_MAX = 10_000;

function skipReason(): string | undefined {
  return labSkipReason("network lab tests", ["ip"]);
}

describe("network lab", { skip: skipReason(), timeout: 120_000 }, () => {
  let lab: NetworkLab;
  const listeners: ChildProcess[] = [];
  const node = (i: number) => lab.topology.nodes[i - 1]!;
  const client = (j: number) => lab.topology.clients[j - 1]!;
  const addressOf = (i: number, port: LabPortName) => node(i).ports.find((p) => p.name === port)!.address;
  const reach = (from: string, address: string) => reaches(lab, from, address);
  const portStatus = async (i: number, port: LabPortName) => {
    const found = (await lab.status()).ports.find((p) => p.node === `n${i}` && p.port === port);
    assert.ok(found, `status has n${i} ${port}`);
    return found;
  };
  /** Waits (bounded) until `from` reaches `address`: after an undo, the kernel may take a moment. */
  const untilReaches = (from: string, address: string) =>
    until(
      `${from} to reach ${address}`,
      async () => ((await reach(from, address)) ? true : undefined),
      SETTLE_MS_MAX,
    );

  before(async () => {
    lab = await NetworkLab.up({ tag: TAG, nodes: 3, clients: 2 });
    for (const n of lab.topology.nodes) listeners.push(await startListener(lab, n.namespace));
  });
  after(async () => {
    for (const child of listeners) child.kill("SIGKILL");
    await NetworkLab.down(TAG);
  });

  test("after up: a client reaches a node on its subnet, nodes reach each other on the storage network", async () => {
    assert.equal(await reach(client(1).namespace, addressOf(1, "eth0")), true, "c1 to n1 eth0");
    assert.equal(await reach(node(2).namespace, addressOf(3, "stor0")), true, "n2 to n3 stor0");
    // c2 is on subnet B and reaches subnet A through node 1.
    assert.equal(await reach(client(2).namespace, addressOf(2, "eth0")), true, "c2 to n2 eth0 via n1");
    const status = await lab.status();
    assert.equal(status.ports.length, 9);
    assert.ok(status.ports.every((p) => p.operstate === "UP" && p.attached && p.bridgePortUp));
    assert.ok(status.ports.every((p) => p.addresses.includes(p.address)));
  });

  test("port-down: the node's port loses carrier and passes nothing; port-up restores it", async () => {
    await lab.fault({ kind: "port-down", node: "n1", port: "eth0" });
    const down = await until(
      "n1 eth0 to lose carrier",
      async () => {
        const s = await portStatus(1, "eth0");
        return s.operstate === "UP" ? undefined : s;
      },
      SETTLE_MS_MAX,
    );
    assert.equal(down.bridgePortUp, false);
    assert.equal(await reach(client(1).namespace, addressOf(1, "eth0")), false, "c1 to n1 eth0");
    assert.equal(await reach(client(1).namespace, addressOf(2, "eth0")), true, "c1 to n2 eth0");
    await lab.fault({ kind: "port-up", node: "n1", port: "eth0" });
    await untilReaches(client(1).namespace, addressOf(1, "eth0"));
    assert.equal((await portStatus(1, "eth0")).operstate, "UP");
  });

  test("subnet-down: the node's port stays up but the subnet no longer reaches it; subnet-up restores it", async () => {
    await lab.fault({ kind: "subnet-down", node: "n1", subnet: "A" });
    const cut = await portStatus(1, "eth0");
    assert.equal(cut.operstate, "UP", "link state is untouched");
    assert.equal(cut.attached, false);
    assert.equal(await reach(client(1).namespace, addressOf(1, "eth0")), false, "c1 to n1 eth0");
    assert.equal(await reach(client(1).namespace, addressOf(2, "eth0")), true, "c1 to n2 eth0");
    await lab.fault({ kind: "subnet-up", node: "n1", subnet: "A" });
    await untilReaches(client(1).namespace, addressOf(1, "eth0"));
  });

  test("storage-cut: the node no longer reaches the storage network, the others still do", async () => {
    await lab.fault({ kind: "storage-cut", node: "n2" });
    assert.equal((await portStatus(2, "stor0")).operstate, "UP");
    assert.equal(await reach(node(2).namespace, addressOf(3, "stor0")), false, "n2 to n3 stor0");
    assert.equal(await reach(node(1).namespace, addressOf(3, "stor0")), true, "n1 to n3 stor0");
    await lab.fault({ kind: "storage-heal", node: "n2" });
    await untilReaches(node(2).namespace, addressOf(3, "stor0"));
  });

  test("heal undoes every fault at once", async () => {
    await lab.fault({ kind: "port-down", node: "n3", port: "eth1" });
    await lab.fault({ kind: "subnet-down", node: "n1", subnet: "A" });
    await lab.fault({ kind: "storage-cut", node: "n2" });
    await lab.fault({ kind: "heal" });
    await untilReaches(client(1).namespace, addressOf(1, "eth0"));
    await untilReaches(client(2).namespace, addressOf(3, "eth1"));
    await untilReaches(node(2).namespace, addressOf(3, "stor0"));
    const status = await until(
      "every port up and attached",
      async () => {
        const s = await lab.status();
        return s.ports.every((p) => p.operstate === "UP" && p.attached && p.bridgePortUp) ? s : undefined;
      },
      SETTLE_MS_MAX,
    );
    assert.equal(status.ports.length, 9);
  });

  test("a second up of the same tag replaces the lab; down leaves no namespace of the tag", async () => {
    const again = await NetworkLab.open(TAG);
    assert.deepEqual(again.topology, lab.topology, "open reads back the lab up made");
    for (const child of listeners.splice(0)) child.kill("SIGKILL");
    lab = await NetworkLab.up({ tag: TAG, nodes: 2, clients: 1 });
    const mine = (names: string[]) => names.filter((ns) => ns.startsWith(`fl${TAG}`));
    assert.deepEqual(mine(await listNamespaces()).sort(), [
      `fl${TAG}c1`,
      `fl${TAG}n1`,
      `fl${TAG}n2`,
      `fl${TAG}sw`,
    ]);
    const removed = await lab.down();
    assert.equal(removed.length, 4);
    assert.deepEqual(mine(await listNamespaces()), []);
    assert.deepEqual(await NetworkLab.down(TAG), [], "down again is a no-op");
  });
});
