import assert from "node:assert/strict";
import { test } from "node:test";
import { LinuxVipDriver, LoopbackVipDriver, VipDriverError } from "../../../src/net/vip-driver.ts";

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

test("the Linux driver says so when the announcement did not go out", async () => {
  const driver = new LinuxVipDriver({ run: async () => "0 packets transmitted" });
  await assert.rejects(driver.hold("10.7.1.50", "eth0"), /sent no announcement/);
});
