import assert from "node:assert/strict";
import { test } from "node:test";
import { nodeConfigSchema } from "../../../src/cli/node.ts";
import { PORT_BALANCE_DEFAULT } from "../../../src/net/port-balance.ts";

const base = { nodeId: "n1", etcd: ["http://127.0.0.1:2379"], secretFile: "/s", dataDir: "/d" };
const linux = (extra: Record<string, unknown>) => ({
  ...base,
  network: { driver: "linux", ports: [{ name: "eth0", subnet: "10.7.1.0/24" }], ...extra },
});

/** The problems zod finds, as "path: message". */
function problems(raw: unknown): string[] {
  const parsed = nodeConfigSchema.safeParse(raw);
  return parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
}

test("port balancing is on by default, can be tuned, and can be turned off", () => {
  assert.deepEqual(nodeConfigSchema.parse(base).network.portBalance, PORT_BALANCE_DEFAULT);
  assert.deepEqual(
    nodeConfigSchema.parse(linux({ portBalance: { floorBytesPerSec: 65536 } })).network.portBalance,
    {
      ...PORT_BALANCE_DEFAULT,
      floorBytesPerSec: 65536,
    },
  );
  assert.equal(nodeConfigSchema.parse(linux({ portBalance: false })).network.portBalance, false);
});

test("bad port balancing settings are refused, naming the field", () => {
  assert.match(
    problems(linux({ portBalance: { startRatio: 1.2, stopRatio: 1.5 } })).join(),
    /stopRatio must be below/,
  );
  assert.match(problems(linux({ portBalance: { movesMax: 0 } })).join(), /network\.portBalance/);
  assert.match(problems(linux({ portBalance: { floorBytesPerSec: -1 } })).join(), /network\.portBalance/);
  assert.match(
    problems(linux({ portBalance: { ratio: 2 } })).join(),
    /network\.portBalance/,
    "unknown keys too",
  );
  assert.match(problems(linux({ portBalance: true })).join(), /network\.portBalance/);
});
