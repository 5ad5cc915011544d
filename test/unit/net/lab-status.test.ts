import assert from "node:assert/strict";
import { test } from "node:test";
import { IpOutputError, labStatusOf, parseLinks, parseNetnsList } from "../../../src/net/lab-status.ts";
import { labTopology } from "../../../src/net/lab-topology.ts";

test("netns list: JSON, or nothing at all when there is no namespace", () => {
  assert.deepEqual(parseNetnsList('[{"name":"fllabsw","id":0},{"name":"x"}]\n'), ["fllabsw", "x"]);
  assert.deepEqual(parseNetnsList(""), []);
  assert.throws(() => parseNetnsList("oops"), IpOutputError);
  assert.throws(() => parseNetnsList('[{"id":1}]'), /name/);
});

test("a port's status joins the node's end (operstate, addresses) with the bridge's end (master, up)", () => {
  const topology = labTopology({ tag: "lab", nodes: 1, clients: 0, octet: 150 });
  const nodeLinks = parseLinks(
    JSON.stringify([
      { ifname: "lo", flags: ["LOOPBACK", "UP"], operstate: "UNKNOWN", addr_info: [] },
      {
        ifname: "eth0",
        flags: ["NO-CARRIER", "BROADCAST", "UP"],
        operstate: "LOWERLAYERDOWN",
        addr_info: [
          { family: "inet", local: "10.150.1.11", prefixlen: 24 },
          { family: "inet", local: "10.150.1.50", prefixlen: 24 },
          { family: "inet6", local: "fe80::1", prefixlen: 64 },
        ],
      },
      {
        ifname: "eth1",
        flags: ["UP"],
        operstate: "UP",
        addr_info: [{ family: "inet", local: "10.150.2.11" }],
      },
    ]),
    "node",
  );
  const switchLinks = parseLinks(
    JSON.stringify([
      { ifname: "n1eth0", flags: ["BROADCAST"], operstate: "DOWN", master: "brA" },
      { ifname: "n1eth1", flags: ["UP", "LOWER_UP"], operstate: "UP" },
      { ifname: "n1stor0", flags: ["UP"], operstate: "UP", master: "brS" },
    ]),
    "switch",
  );
  const status = labStatusOf(topology, new Map([["fllabn1", nodeLinks]]), switchLinks);
  assert.deepEqual(
    status.ports.map((p) => [p.port, p.operstate, p.addresses.join(","), p.attached, p.bridgePortUp]),
    [
      ["eth0", "LOWERLAYERDOWN", "10.150.1.11,10.150.1.50", true, false],
      ["eth1", "UP", "10.150.2.11", false, true],
      ["stor0", "MISSING", "", true, true],
    ],
  );
});
