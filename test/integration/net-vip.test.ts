/**
 * The Linux VIP driver on real namespaces: a VIP put on a node's port answers a client on that
 * subnet; moved to another node, it is announced by gratuitous ARP, so the client's neighbour entry
 * for the VIP names the new node's MAC before the client sends anything, and the client reaches the
 * new node at once. Released, it answers nowhere.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { NetworkLab, runLabCommand } from "../../src/net/lab.ts";
import { commandRunner, LinuxVipDriver } from "../../src/net/vip-driver.ts";
import { reaches, startListener } from "../support/lab-reach.ts";
import { labSkipReason } from "../support/lab-skip.ts";

const TAG = `v${(process.pid % 10_000).toString(36)}`;

function skipReason(): string | undefined {
  return labSkipReason("VIP driver tests", ["arping"]);
}

describe("Linux VIP driver", { skip: skipReason(), timeout: 120_000 }, () => {
  let lab: NetworkLab;
  const listeners: ChildProcess[] = [];
  before(async () => {
    lab = await NetworkLab.up({ tag: TAG, nodes: 2, clients: 1 });
    for (const n of lab.topology.nodes) listeners.push(await startListener(lab, n.namespace));
  });
  after(async () => {
    for (const child of listeners) child.kill("SIGKILL");
    await NetworkLab.down(TAG);
  });

  const macOf = async (namespace: string, port: string): Promise<string> => {
    const out = await runLabCommand([
      "ip",
      "netns",
      "exec",
      namespace,
      "cat",
      `/sys/class/net/${port}/address`,
    ]);
    return out.trim();
  };
  const neighbour = async (namespace: string, address: string): Promise<string> =>
    runLabCommand(["ip", "netns", "exec", namespace, "ip", "neigh", "show", address]);

  test("a VIP answers where it is held, follows its holder with a gratuitous ARP, and is gone when released", async () => {
    const [n1, n2] = lab.topology.nodes as [(typeof lab.topology.nodes)[0], (typeof lab.topology.nodes)[0]];
    const c1 = lab.topology.clients[0]!;
    const vip = lab.topology.vipPools.A.addresses[0]!;
    const d1 = new LinuxVipDriver({ run: commandRunner(n1.namespace) });
    const d2 = new LinuxVipDriver({ run: commandRunner(n2.namespace) });
    assert.equal(await reaches(lab, c1.namespace, vip), false, "no one holds it yet");

    await d1.hold(vip, "eth0");
    await d1.hold(vip, "eth0"); // idempotent
    assert.equal(await reaches(lab, c1.namespace, vip), true, "c1 reaches the VIP on n1");
    const n1Mac = await macOf(n1.namespace, "eth0");
    assert.match(await neighbour(c1.namespace, vip), new RegExp(n1Mac));

    await d1.release(vip);
    await d2.hold(vip, "eth0");
    const n2Mac = await macOf(n2.namespace, "eth0");
    assert.match(
      await neighbour(c1.namespace, vip),
      new RegExp(n2Mac),
      "the announcement rewrote the client's entry before it sent anything",
    );
    const startedAt = performance.now();
    assert.equal(await reaches(lab, c1.namespace, vip), true, "c1 reaches the VIP on n2");
    const ms = performance.now() - startedAt;
    console.log(`reconnect to the moved VIP took ${ms.toFixed(1)} ms (a connect process's start included)`);

    await d2.release(vip);
    await d2.release(vip); // idempotent
    assert.equal(await reaches(lab, c1.namespace, vip), false, "released: it answers nowhere");
    await assert.rejects(d1.hold(vip, null), /needs a port/);
    await assert.rejects(d1.hold("10.0.0.300", "eth0"), /not an IPv4 address/);
  });
});
