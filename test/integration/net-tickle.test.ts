/**
 * Tickle ACKs on real namespaces. A client holds a connection to a server on a VIP of node 1; node 1
 * drops off the client subnet (its port goes down, as in a crash) while the client has a byte in
 * flight, so the client backs off retransmitting; the VIP moves to node 2, which also serves the port.
 * Node 2 tickling the connections tracked on node 1 before the move resets the client's connection at
 * once; without the tickle, the client learns nothing until its next retransmission, seconds later.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { listNamespaces, NetworkLab } from "../../src/net/lab.ts";
import type { LabNode } from "../../src/net/lab-topology.ts";
import type { TcpConnection } from "../../src/net/tcp-connections.ts";
import { tickleProgram } from "../../src/net/tickle.ts";
import { commandRunner, LinuxVipDriver } from "../../src/net/vip-driver.ts";
import { labSkipReason } from "../support/lab-skip.ts";
import {
  connectClient,
  isEstablished,
  retransmitState,
  startKeepingServer,
  untilRetransmitted,
} from "../support/lab-tcp.ts";

const TAG = `t${(process.pid % 10_000).toString(36)}`;
const SERVICE_PORT = 7998;
/** A reset that is the tickle's comes in milliseconds; one in this window without a tickle would spoil the contrast. */
const RESET_WINDOW_MS = 1000;
/**
 * Retransmissions the client has made before the VIP arrives: after the 4th (at ~3 s, with the
 * 200 ms minimum RTO doubling) the next is ~3.2 s away, so a reset within the window cannot be one.
 */
const RETRANSMITS_BEFORE_MOVE = 4;
const RETRANSMITS_WAIT_MS_MAX = 15_000;
/** Without a tickle the reset comes at the next retransmission; this bounds waiting for it. */
const LATE_RESET_MS_MAX = 20_000;
const CARRIER_WAIT_MS_MAX = 10_000;

function skipReason(): string | undefined {
  return labSkipReason("tickle tests", ["arping", "gcc", "ss"]);
}

describe("tickle ACKs after a VIP moves", { skip: skipReason(), timeout: 180_000 }, () => {
  let lab: NetworkLab;
  let n1: LabNode;
  let n2: LabNode;
  let d1: LinuxVipDriver;
  let d2: LinuxVipDriver;
  let vip: string;
  const servers: ChildProcess[] = [];
  const clients: ChildProcess[] = [];
  before(async () => {
    lab = await NetworkLab.up({ tag: TAG, nodes: 2, clients: 1 });
    [n1, n2] = lab.topology.nodes as [LabNode, LabNode];
    vip = lab.topology.vipPools.A.addresses[0]!;
    d1 = new LinuxVipDriver({ run: commandRunner(n1.namespace) });
    d2 = new LinuxVipDriver({ run: commandRunner(n2.namespace) });
    // Built here so the measured reset is the tickle's, not gcc's.
    await tickleProgram();
    // Both nodes serve the port, as a vserver's service is wherever its VIP is; a listener bound to
    // the VIP needs the address there when it starts, and keeps its bind when the address goes.
    await d2.hold(vip, "eth0");
    servers.push(await startKeepingServer(lab, n2.namespace, vip, SERVICE_PORT));
    await d2.release(vip);
    await d1.hold(vip, "eth0");
    servers.push(await startKeepingServer(lab, n1.namespace, vip, SERVICE_PORT));
  });
  after(async () => {
    for (const child of [...servers, ...clients]) child.kill("SIGKILL");
    await NetworkLab.down(TAG);
    const left = (await listNamespaces()).filter((ns) => ns.startsWith(`fl${TAG}`));
    assert.deepEqual(left, [], "the lab's namespaces are gone");
  });

  /** No client, and the VIP back on node 1 with node 1's port up, as before() left it. */
  async function restore(): Promise<void> {
    for (const child of clients.splice(0)) child.kill("SIGKILL");
    await d2.release(vip);
    await lab.fault({ kind: "port-up", node: n1.id, port: "eth0" });
    const deadline = performance.now() + CARRIER_WAIT_MS_MAX;
    for (;;) {
      const port = (await lab.status()).ports.find((p) => p.node === n1.id && p.port === "eth0");
      if (port?.operstate === "UP") break;
      assert.ok(
        performance.now() < deadline,
        `${n1.id} eth0 has no carrier ${CARRIER_WAIT_MS_MAX} ms after port-up`,
      );
      await sleep(20);
    }
    await d1.release(vip);
    await d1.hold(vip, "eth0");
  }

  /**
   * A client connected to the VIP on node 1, node 1 cut off with the client's byte unacknowledged,
   * the VIP held by node 2: returns the client, and the connections node 1 had tracked.
   */
  async function clientStrandedByMove() {
    const c1 = lab.topology.clients[0]!;
    const client = await connectClient(lab, c1.namespace, vip, SERVICE_PORT);
    clients.push(client.child);
    const tracked = await d1.connections(vip);
    const mine = tracked.connections.filter((c) => c.remote.port === client.localPort);
    assert.deepEqual(mine, [
      { local: { ip: vip, port: SERVICE_PORT }, remote: { ip: c1.port.address, port: client.localPort } },
    ] satisfies TcpConnection[]);
    await lab.fault({ kind: "port-down", node: n1.id, port: "eth0" });
    client.write();
    await untilRetransmitted(
      c1.namespace,
      client.localPort,
      RETRANSMITS_BEFORE_MOVE,
      RETRANSMITS_WAIT_MS_MAX,
    );
    await d2.hold(vip, "eth0");
    const state = await retransmitState(c1.namespace, client.localPort);
    assert.ok(
      state !== undefined && state.timerMs > RESET_WINDOW_MS + 500,
      `the client's next retransmission must be well past the window, to tell the tickle's reset from it: ${JSON.stringify(state)}`,
    );
    return { client, c1, tracked, nextRetransmitMs: state.timerMs };
  }

  /** Runs `body`, then puts the VIP back on node 1 however it ended, so one test's failure is not the next's. */
  async function moved(body: () => Promise<void>): Promise<void> {
    try {
      await body();
    } finally {
      await restore();
    }
  }

  test("with a tickle from the new holder, the client's connection is reset at once", () =>
    moved(async () => {
      const { client, tracked, nextRetransmitMs } = await clientStrandedByMove();
      const startedAt = performance.now();
      await d2.tickle(vip, tracked.connections);
      const event = await client.next(RESET_WINDOW_MS);
      const ms = performance.now() - startedAt;
      assert.equal(event, "error ECONNRESET", `a reset within ${RESET_WINDOW_MS} ms of the tickle`);
      console.log(
        `tickle: reset ${ms.toFixed(1)} ms after the tickle began (next retransmission was ${nextRetransmitMs} ms away)`,
      );
    }));

  test("without a tickle, the client hears nothing until its next retransmission", () =>
    moved(async () => {
      const { client, c1, nextRetransmitMs } = await clientStrandedByMove();
      const startedAt = performance.now();
      assert.equal(await client.next(RESET_WINDOW_MS), undefined, `no reset within ${RESET_WINDOW_MS} ms`);
      assert.equal(
        await isEstablished(c1.namespace, client.localPort),
        true,
        "the client still thinks it is connected",
      );
      // Not needed for the contrast, but it shows what the tickle saves: the reset comes once the
      // client retransmits to the VIP's new holder.
      const event = await client.next(LATE_RESET_MS_MAX);
      const ms = performance.now() - startedAt;
      assert.equal(event, "error ECONNRESET", "reset at the next retransmission");
      console.log(
        `no tickle: reset ${ms.toFixed(0)} ms after the move (its next retransmission was ${nextRetransmitMs} ms away)`,
      );
    }));
});
