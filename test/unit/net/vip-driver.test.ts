import assert from "node:assert/strict";
import { test } from "node:test";
import { LinuxVipDriver, LoopbackVipDriver, VipDriverError } from "../../../src/net/vip-driver.ts";
import { subnetRoute } from "../../support/subnet-route.ts";

test("the loopback driver holds only 127.0.0.0/8 addresses", async () => {
  const driver = new LoopbackVipDriver();
  await driver.hold("127.0.73.1");
  await assert.rejects(driver.hold("10.0.0.1"), VipDriverError);
});

test("the Linux driver adds, announces, moves and deletes an address, each once", async () => {
  const commands: string[] = [];
  const driver = new LinuxVipDriver({
    run: async (argv) => {
      commands.push(argv.slice(0, 4).join(" "));
      return argv[0] === "arping" ? "2 packets transmitted, 0 packets received" : "";
    },
  });
  await driver.hold("10.7.1.50", "eth0");
  await driver.hold("10.7.1.50", "eth0");
  await driver.hold("10.7.1.50", "eth2");
  await driver.release("10.7.1.50");
  await driver.release("10.7.1.50");
  assert.deepEqual(commands, [
    "ip addr add 10.7.1.50/32",
    "arping -U -c 2",
    // A move between ports adds on the new one before it deletes from the old.
    "ip addr add 10.7.1.50/32",
    "ip addr del 10.7.1.50/32",
    "arping -U -c 2",
    "ip addr del 10.7.1.50/32",
  ]);
});

test("the Linux driver routes a VIP's replies out of the port it is on, with a table of its own", async () => {
  const commands: string[] = [];
  const driver = new LinuxVipDriver({
    run: async (argv) => {
      commands.push(argv.join(" "));
      return argv[0] === "arping" ? "1 packets transmitted" : "";
    },
  });
  const subnet = "10.7.1.0/24";
  await driver.hold("10.7.1.50", "eth0", { subnet, announce: false });
  await driver.hold("10.7.1.51", "eth0", { subnet, announce: false });
  await driver.hold("10.7.1.50", "eth2", { subnet, announce: false });
  await driver.release("10.7.1.50");
  assert.deepEqual(commands, [
    "ip addr add 10.7.1.50/32 dev eth0",
    "ip route replace 10.7.1.0/24 dev eth0 src 10.7.1.50 table 21024",
    "ip rule add from 10.7.1.50 lookup 21024 pref 2024",
    "ip addr add 10.7.1.51/32 dev eth0",
    "ip route replace 10.7.1.0/24 dev eth0 src 10.7.1.51 table 21025",
    "ip rule add from 10.7.1.51 lookup 21025 pref 2025",
    // A move: the table follows the address to the new port before it leaves the old one.
    "ip addr add 10.7.1.50/32 dev eth2",
    "ip route replace 10.7.1.0/24 dev eth2 src 10.7.1.50 table 21024",
    "ip addr del 10.7.1.50/32 dev eth0",
    "ip addr del 10.7.1.50/32 dev eth2",
    "ip rule del from 10.7.1.50 lookup 21024 pref 2024",
    "ip route flush table 21024",
  ]);
});

test("the Linux driver says so when the announcement did not go out", async () => {
  const driver = new LinuxVipDriver({ run: async () => "0 packets transmitted" });
  await assert.rejects(driver.hold("10.7.1.50", "eth0"), /sent no announcement/);
});

test("the Linux driver reads a VIP's connections with ss and keeps only the VIP's", async () => {
  const asked: string[] = [];
  const driver = new LinuxVipDriver({
    run: async (argv) => {
      asked.push(argv.join(" "));
      // Captured in the lab: the VIP's connection, and one on the node's own address.
      return "0      0      10.109.1.50:7998  10.109.1.201:51234\n0      0      10.109.1.11:7999  10.109.1.201:40000\n";
    },
  });
  assert.deepEqual(await driver.connections("10.109.1.50"), {
    connections: [{ local: { ip: "10.109.1.50", port: 7998 }, remote: { ip: "10.109.1.201", port: 51234 } }],
    omittedCount: 0,
  });
  assert.deepEqual(asked, ["ss -tnH state established src 10.109.1.50"]);
  assert.deepEqual(await new LoopbackVipDriver().connections(), { connections: [], omittedCount: 0 });
});

test("the Linux driver tickles with the program it is given, and says so when not every packet went", async () => {
  const connection = { local: { ip: "10.7.1.50", port: 2049 }, remote: { ip: "10.7.1.201", port: 800 } };
  const asked: string[] = [];
  let report = "sent 3 of 3\n";
  const driver = new LinuxVipDriver({
    run: async (argv) => {
      asked.push(argv.join(" "));
      return report;
    },
    tickleProgram: async () => "/cache/tickle-ack-0123",
  });
  await driver.tickle("10.7.1.50", []);
  assert.deepEqual(asked, [], "nothing to tickle runs nothing");
  await driver.tickle("10.7.1.50", [connection]);
  assert.deepEqual(asked, ["/cache/tickle-ack-0123 3 10.7.1.50:2049 10.7.1.201:800"]);
  report = "sent 2 of 3\n";
  await assert.rejects(driver.tickle("10.7.1.50", [connection]), /tickle ACKs from 10.7.1.50: sent 2 of 3/);
});

test("the Linux driver routes through a router: proxy ARP and a host route there, a source rule and table at the owner", async () => {
  const commands: string[] = [];
  const driver = new LinuxVipDriver({
    run: async (argv) => {
      commands.push(argv.join(" "));
      if (argv[1] === "neigh" && argv[2] === "del")
        throw new VipDriverError("RTNETLINK answers: No such file or directory");
      return argv[0] === "arping" ? "2 packets transmitted, 0 packets received" : "";
    },
  });
  const route = subnetRoute();
  await driver.forwardFor(route);
  await driver.replyVia(route);
  await driver.replyVia({ ...route, vip: "10.7.1.51" });
  await driver.stopForwardingFor(route);
  await driver.stopReplyingVia(route);
  await driver.stopReplyingVia(route);
  assert.deepEqual(commands, [
    "sysctl -qw net.ipv4.conf.eth0.forwarding=1 net.ipv4.conf.eth1.forwarding=1",
    "ip route replace 10.7.1.50/32 via 10.7.2.11 dev eth1",
    "ip neigh replace proxy 10.7.1.50 dev eth0",
    "arping -U -c 2 -w 0.05 -i eth0 -S 10.7.1.50 10.7.1.50",
    "ip route replace 10.7.1.0/24 via 10.7.2.12 dev eth1 table 20000",
    "ip rule add from 10.7.1.50 lookup 20000 pref 1000",
    // A second VIP replied through a router gets a table of its own.
    "ip route replace 10.7.1.0/24 via 10.7.2.12 dev eth1 table 20001",
    "ip rule add from 10.7.1.51 lookup 20001 pref 1001",
    // Gone already is done: the route is still deleted.
    "ip neigh del proxy 10.7.1.50 dev eth0",
    "ip route del 10.7.1.50/32 via 10.7.2.11 dev eth1",
    "ip rule del from 10.7.1.50 lookup 20000 pref 1000",
    "ip route flush table 20000",
  ]);
});
