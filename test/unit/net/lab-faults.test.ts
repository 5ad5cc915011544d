import assert from "node:assert/strict";
import { test } from "node:test";
import { faultCommands, LabFaultError } from "../../../src/net/lab-faults.ts";
import { labTopology } from "../../../src/net/lab-topology.ts";

const topology = labTopology({ tag: "lab", nodes: 3 });
const sw = (...rest: string[]) => ["ip", "-n", "fllabsw", "link", "set", ...rest].join(" ");
const commandsOf = (fault: Parameters<typeof faultCommands>[1]) =>
  faultCommands(topology, fault).map((argv) => argv.join(" "));

test("port-down and port-up set the bridge side of the node's port down and up", () => {
  assert.deepEqual(commandsOf({ kind: "port-down", node: "n1", port: "eth0" }), [sw("n1eth0", "down")]);
  assert.deepEqual(commandsOf({ kind: "port-up", node: "2", port: "stor0" }), [sw("n2stor0", "up")]);
});

test("subnet-down detaches the node's ports on that subnet from its bridge; subnet-up attaches them again", () => {
  assert.deepEqual(commandsOf({ kind: "subnet-down", node: "n3", subnet: "B" }), [sw("n3eth1", "nomaster")]);
  assert.deepEqual(commandsOf({ kind: "subnet-up", node: "n3", subnet: "A" }), [
    sw("n3eth0", "master", "brA"),
  ]);
  const dual = labTopology({ tag: "lab", nodes: 3, dualPorts: true });
  assert.deepEqual(
    faultCommands(dual, { kind: "subnet-down", node: "n1", subnet: "A" }).map((argv) => argv.join(" ")),
    [sw("n1eth0", "nomaster"), sw("n1eth2", "nomaster")],
  );
});

test("storage-cut and storage-heal detach and attach the node's storage port", () => {
  assert.deepEqual(commandsOf({ kind: "storage-cut", node: "n2" }), [sw("n2stor0", "nomaster")]);
  assert.deepEqual(commandsOf({ kind: "storage-heal", node: "n2" }), [sw("n2stor0", "master", "brS")]);
});

test("heal attaches and raises every node port", () => {
  const commands = commandsOf({ kind: "heal" });
  assert.equal(commands.length, 3 * 3 * 2);
  assert.ok(commands.includes(sw("n3eth1", "master", "brB")));
  assert.ok(commands.includes(sw("n1stor0", "up")));
  assert.ok(
    commands.every((c) => !c.includes("c1")),
    "clients are never faulted",
  );
});

test("a fault on a node the lab does not have is refused naming the lab's nodes", () => {
  assert.throws(
    () => faultCommands(topology, { kind: "storage-cut", node: "n4" }),
    (error: unknown) =>
      error instanceof LabFaultError && /no node "n4" \(its nodes: n1, n2, n3\)/.test(error.message),
  );
  assert.throws(
    () => faultCommands(topology, { kind: "port-down", node: "c1", port: "eth0" }),
    LabFaultError,
  );
});
