import assert from "node:assert/strict";
import { test } from "node:test";
import { FAILED_ROUNDS_MIN, parseArpProbeReport, SubnetProbe } from "../../../src/net/subnet-probe.ts";

const port = (targets: string[], linkUp = true) => ({ name: "eth0", linkUp, address: "10.7.1.11", targets });

test("a port is cut off only when every target failed its latest probe, for two rounds at least", async () => {
  const answering = new Set(["10.7.1.12", "10.7.1.13"]);
  const asked: string[] = [];
  const probe = new SubnetProbe(async (questions) =>
    questions.map((q) => {
      asked.push(q.target);
      return answering.has(q.target);
    }),
  );
  const targets = ["10.7.1.12", "10.7.1.13"];
  await probe.round([port(targets)]);
  assert.equal(probe.cut("eth0"), false);
  // One peer cut off itself: the other still answers, so this port is not.
  answering.delete("10.7.1.12");
  for (let i = 0; i < 3; i++) await probe.round([port(targets)]);
  assert.equal(probe.cut("eth0"), false, "one target down does not cut the port off");
  answering.clear();
  await probe.round([port(targets)]);
  assert.equal(probe.cut("eth0"), false, `${FAILED_ROUNDS_MIN} failed rounds are needed`);
  await probe.round([port(targets)]);
  assert.equal(probe.cut("eth0"), true);
  assert.deepEqual(
    asked.slice(0, 4),
    ["10.7.1.12", "10.7.1.13", "10.7.1.12", "10.7.1.13"],
    "targets in turn",
  );
  answering.add("10.7.1.13");
  await probe.round([port(targets)]);
  await probe.round([port(targets)]);
  assert.equal(probe.cut("eth0"), false, "one answer counts it back");
});

test("a port without link or without targets is never cut off by probes", async () => {
  let probes = 0;
  const probe = new SubnetProbe(async (questions) => {
    probes += questions.length;
    return questions.map(() => false);
  });
  for (let i = 0; i < 3; i++) await probe.round([port(["10.7.1.12"], false)]);
  for (let i = 0; i < 3; i++) await probe.round([port([])]);
  assert.equal(probes, 0);
  assert.equal(probe.cut("eth0"), false);
});

test("arp-probe's report is read per question, a port it could not use counting as unanswered", () => {
  const questions = [
    { port: "eth0", source: "10.7.1.11", target: "10.7.1.12" },
    { port: "eth1", source: "10.7.2.11", target: "10.7.2.12" },
    { port: "eth9", source: "10.7.1.11", target: "10.7.1.12" },
  ];
  const out = "eth0 10.7.1.12 1\neth1 10.7.2.12 0\neth9 10.7.1.12 0 no such port: No such device\n";
  assert.deepEqual(parseArpProbeReport(questions, out), [true, false, false]);
});
