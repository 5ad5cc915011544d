import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ReachMemory, vserverRequires } from "../../../src/cluster/reach.ts";

describe("vserver requirements", () => {
  const reachedByLive = new Set(["subnet:10.7.1.0/24", "subnet:10.7.2.0/24", "storage:s1", "storage:s2"]);
  const serversOf = (volumeId: string) => (volumeId === "vol" ? ["s1", "s3"] : undefined);

  test("each VIP's subnet and every live-reached storage server of its volumes", () => {
    assert.deepEqual(vserverRequires(["10.7.1.50", "10.7.1.51"], ["vol"], { reachedByLive, serversOf }), [
      "storage:s1",
      "subnet:10.7.1.0/24",
    ]);
  });

  test("a server no live node reaches (dead) and a VIP on no published subnet require nothing", () => {
    assert.deepEqual(
      vserverRequires(["192.168.0.9", "127.0.0.1"], ["other"], { reachedByLive, serversOf }),
      [],
    );
  });

  test("with loopback VIPs and no subnets published, only storage servers are required", () => {
    const storageOnly = new Set(["storage:s1"]);
    assert.deepEqual(
      vserverRequires(["127.0.0.2", "127.0.0.3"], ["vol"], { reachedByLive: storageOnly, serversOf }),
      ["storage:s1"],
    );
  });
});

describe("reach memory", () => {
  const universe = new Set(["x", "y"]);
  test("a label the node lacks counts as reached for the grace, then not", () => {
    const memory = new ReachMemory(1000);
    assert.deepEqual(memory.effective("a", ["x", "y"], universe, 0), ["x", "y"]);
    assert.deepEqual(memory.effective("a", ["x"], universe, 100).sort(), ["x", "y"]);
    assert.deepEqual(memory.effective("a", ["x"], universe, 1099).sort(), ["x", "y"]);
    assert.deepEqual(memory.effective("a", ["x"], universe, 1100), ["x"]);
    assert.deepEqual(memory.effective("a", ["x"], universe, 5000), ["x"], "once lacking, it stays so");
  });

  test("a node that never published a label gets the grace too (it may just have started)", () => {
    const memory = new ReachMemory(1000);
    assert.deepEqual(memory.effective("new", [], universe, 0).sort(), ["x", "y"]);
    assert.deepEqual(memory.effective("new", ["y"], universe, 1500), ["y"]);
  });

  test("a label back within the grace starts a fresh grace when it goes again", () => {
    const memory = new ReachMemory(1000);
    memory.effective("a", ["x"], universe, 0);
    memory.effective("a", ["y"], universe, 500);
    assert.deepEqual(memory.effective("a", ["x", "y"], universe, 900), ["x", "y"]);
    memory.effective("a", ["y"], universe, 1500);
    assert.deepEqual(
      memory.effective("a", ["y"], universe, 2400).sort(),
      ["x", "y"],
      "a fresh grace from 1500",
    );
    assert.deepEqual(memory.effective("a", ["y"], universe, 2600), ["y"]);
  });

  test("labels nobody reaches are not added, and nodes are tracked apart", () => {
    const memory = new ReachMemory(1000);
    assert.deepEqual(memory.effective("a", [], new Set(["x"]), 0), ["x"]);
    assert.deepEqual(memory.effective("a", [], new Set(), 2000), [], "x is gone from the universe");
    assert.deepEqual(memory.effective("b", [], new Set(["x"]), 2000), ["x"], "b's grace starts now");
  });
});
