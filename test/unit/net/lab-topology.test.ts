import assert from "node:assert/strict";
import { test } from "node:test";
import {
  INTERFACE_NAME_CHARS_MAX,
  LabConfigError,
  type LabTopology,
  labNamespaces,
  labShapeIn,
  labTopology,
  teardownCommands,
  upCommands,
} from "../../../src/net/lab-topology.ts";

function interfaceNames(topology: LabTopology): string[] {
  const ports = [...topology.nodes.flatMap((n) => n.ports), ...topology.clients.map((c) => c.port)];
  return [
    ...ports.flatMap((p) => [p.name, p.bridgePort]),
    ...Object.values(topology.networks).map((n) => n.bridge),
  ];
}

test("the largest lab's interface and namespace names fit the kernel's 15 characters", () => {
  const topology = labTopology({ tag: "abcdef", nodes: 9, clients: 9 });
  for (const name of [...interfaceNames(topology), ...labNamespaces(topology)]) {
    assert.ok(name.length <= INTERFACE_NAME_CHARS_MAX, `${name} is ${name.length} characters`);
  }
  // Every name a command gives to `ip link add` is one of those.
  for (const argv of upCommands(topology)) {
    const at = argv.indexOf("add");
    if (argv.includes("link") && at >= 0) assert.ok(argv[at + 1]!.length <= INTERFACE_NAME_CHARS_MAX);
  }
});

test("defaults: tag lab, 3 nodes with eth0/eth1/stor0 at .1<i>, 2 clients at .20<j> on A then B", () => {
  const topology = labTopology({});
  assert.equal(topology.tag, "lab");
  assert.equal(topology.switchNamespace, "fllabsw");
  assert.deepEqual(
    topology.nodes.map((n) => n.namespace),
    ["fllabn1", "fllabn2", "fllabn3"],
  );
  const x = topology.octet;
  assert.ok(x >= 100 && x <= 199, `octet ${x} from the tag's hash`);
  assert.deepEqual(
    topology.nodes[1]!.ports.map((p) => [p.name, p.network, p.address, p.bridgePort]),
    [
      ["eth0", "A", `10.${x}.1.12`, "n2eth0"],
      ["eth1", "B", `10.${x}.2.12`, "n2eth1"],
      ["stor0", "storage", `10.${x}.9.12`, "n2stor0"],
    ],
  );
  const [c1, c2] = topology.clients;
  assert.equal(c1!.port.address, `10.${x}.1.201`);
  assert.deepEqual(c1!.route, { cidr: `10.${x}.2.0/24`, via: `10.${x}.1.11` });
  assert.equal(c2!.port.address, `10.${x}.2.202`);
  assert.deepEqual(c2!.route, { cidr: `10.${x}.1.0/24`, via: `10.${x}.2.11` });
  assert.equal(topology.vipPools.A.addresses.length, 50);
  assert.equal(topology.vipPools.A.addresses[0], `10.${x}.1.50`);
  assert.equal(topology.vipPools.B.addresses.at(-1), `10.${x}.2.99`);
});

test("every address in a lab is unique, VIP pools included", () => {
  const topology = labTopology({ tag: "u", nodes: 9, clients: 9 });
  const addresses = [
    ...topology.nodes.flatMap((n) => n.ports.map((p) => p.address)),
    ...topology.clients.map((c) => c.port.address),
    ...topology.vipPools.A.addresses,
    ...topology.vipPools.B.addresses,
  ];
  assert.equal(new Set(addresses).size, addresses.length);
});

test("distinct tags give distinct namespaces and subnets; the config may set the octet", () => {
  const a = labTopology({ tag: "lab" });
  const b = labTopology({ tag: "t1" });
  assert.notEqual(a.octet, b.octet, "these two tags hash apart");
  const shared = labNamespaces(a).filter((ns) => labNamespaces(b).includes(ns));
  assert.deepEqual(shared, []);
  assert.notEqual(a.networks.A.cidr, b.networks.A.cidr);
  assert.equal(labTopology({ tag: "lab", octet: 42 }).networks.storage.cidr, "10.42.9.0/24");
  assert.equal(labTopology({ tag: "lab" }).octet, a.octet, "the octet is a function of the tag");
});

test("a bad config is refused naming every wrong field", () => {
  assert.throws(() => labTopology({ tag: "Bad-Tag" }), /tag: 1 to 6 of a-z and 0-9/);
  assert.throws(() => labTopology({ tag: "toolong7" }), LabConfigError);
  assert.throws(() => labTopology({ nodes: 0 }), /nodes/);
  assert.throws(() => labTopology({ nodes: 10 }), /nodes/);
  assert.throws(() => labTopology({ clients: 1.5 }), /clients/);
  assert.throws(() => labTopology({ octet: 256 }), /octet/);
  assert.throws(() => labTopology({ nodes: 0, clients: -1 }), /nodes.*clients/);
  assert.throws(() => labTopology({ bogus: 1 } as never), /bogus/);
});

test("up makes every namespace first, then cables each port to its network's bridge", () => {
  const topology = labTopology({ tag: "lab", nodes: 2, clients: 1 });
  const commands = upCommands(topology);
  const adds = commands.filter((argv) => argv[1] === "netns" && argv[2] === "add").map((argv) => argv[3]);
  assert.deepEqual(adds, labNamespaces(topology));
  assert.ok(
    commands.slice(0, adds.length).every((argv) => argv[2] === "add"),
    "namespaces before anything else",
  );
  assert.ok(
    commands.every((argv) => argv.every((arg) => !/\s/.test(arg))),
    "argv arrays, no shell strings",
  );
  const has = (argv: readonly string[]) => commands.some((c) => c.join(" ") === argv.join(" "));
  assert.ok(has(["ip", "-n", "fllabsw", "link", "set", "n2stor0", "master", "brS"]));
  assert.ok(has(["ip", "netns", "exec", "fllabn1", "sysctl", "-qw", "net.ipv4.ip_forward=1"]));
  assert.ok(
    has([
      "ip",
      "-n",
      "fllabc1",
      "route",
      "add",
      topology.networks.B.cidr,
      "via",
      topology.nodes[0]!.ports[0]!.address,
      "dev",
      "eth0",
    ]),
  );
});

test("teardown deletes every namespace of the tag, leftovers of a bigger lab too, and nothing else", () => {
  const topology = labTopology({ tag: "lab" });
  const host = [...labNamespaces(topology), "fllabn7", "fllab1sw", "fllab1n1", "other", "fllabx", "fllabn1x"];
  const deleted = teardownCommands("lab", host).map((argv) => argv.join(" "));
  assert.deepEqual(
    deleted,
    [...labNamespaces(topology), "fllabn7"].map((ns) => `ip netns del ${ns}`),
  );
  assert.deepEqual(teardownCommands("lab", ["fllab1sw"]), []);
});

test("a lab's shape is read back from the namespaces there are", () => {
  assert.deepEqual(labShapeIn("lab", labNamespaces(labTopology({ nodes: 4, clients: 1 }))), {
    nodes: 4,
    clients: 1,
  });
  assert.equal(labShapeIn("lab", ["fllabn1"]), undefined, "no switch: no lab");
});

test("dual ports and host links add second client ports, a cluster network and this host's links", () => {
  const topology = labTopology({
    tag: "lab",
    nodes: 2,
    clients: 0,
    octet: 7,
    dualPorts: true,
    hostLinks: true,
  });
  const n2 = topology.nodes[1]!;
  assert.deepEqual(
    n2.ports.map((p) => `${p.name} ${p.network} ${p.address}`),
    [
      "eth0 A 10.7.1.12",
      "eth1 B 10.7.2.12",
      "stor0 storage 10.7.9.12",
      "eth2 A 10.7.1.32",
      "eth3 B 10.7.2.32",
      "clu0 cluster 10.7.8.12",
    ],
  );
  assert.deepEqual(
    topology.hostLinks.map((l) => `${l.name} ${l.network} ${l.address}`),
    ["fllabhc cluster 10.7.8.254", "fllabhs storage 10.7.9.254"],
  );
  const commands = upCommands(topology).map((argv) => argv.join(" "));
  assert.ok(commands.includes("ip link add fllabhc type veth peer name hostC netns fllabsw"));
  assert.ok(commands.includes("ip -n fllabsw link set hostC master brC"));
  assert.ok(commands.includes("ip addr add 10.7.8.254/24 dev fllabhc"));
  assert.ok(
    commands.includes("ip netns exec fllabn1 sysctl -qw net.ipv4.conf.all.ignore_routes_with_linkdown=1"),
    "a port without link is not used for replies",
  );
  const plain = labTopology({ tag: "lab", nodes: 1, clients: 0 });
  assert.deepEqual(plain.hostLinks, []);
  assert.deepEqual(
    plain.nodes[0]!.ports.map((p) => p.name),
    ["eth0", "eth1", "stor0"],
  );
});
