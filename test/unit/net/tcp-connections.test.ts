import assert from "node:assert/strict";
import { test } from "node:test";
import {
  establishedArgv,
  parseEstablished,
  TcpConnectionsParseError,
} from "../../../src/net/tcp-connections.ts";

/**
 * Captured from `ss -tnH state established` (iproute2 6.1) in a namespace with 10.9.8.50 and
 * 10.9.8.51 on lo: a listener bound to lo with SO_BINDTODEVICE (port 2049), a dual-stack listener on
 * :: (port 2050, its IPv4 connections shown as ::ffff:), and an IPv6 one on ::1 (port 2051).
 */
const CAPTURED = `0      0               10.9.8.50:58086          10.9.8.50:2050 
0      0               10.9.8.51:58542          10.9.8.51:2050 
0      0            10.9.8.50%lo:2049           10.9.8.50:45588
0      0               10.9.8.50:45588          10.9.8.50:2049 
0      0      [::ffff:10.9.8.50]:2050  [::ffff:10.9.8.50]:58086
0      0                   [::1]:2051               [::1]:37594
0      0      [::ffff:10.9.8.51]:2050  [::ffff:10.9.8.51]:58542
0      0                   [::1]:37594              [::1]:2051 

`;

test("the VIP's connections: plain, bound to a device, and accepted by a dual-stack listener", () => {
  const tracked = parseEstablished(CAPTURED, "10.9.8.50");
  assert.deepEqual(tracked.connections, [
    { local: { ip: "10.9.8.50", port: 58086 }, remote: { ip: "10.9.8.50", port: 2050 } },
    { local: { ip: "10.9.8.50", port: 2049 }, remote: { ip: "10.9.8.50", port: 45588 } },
    { local: { ip: "10.9.8.50", port: 45588 }, remote: { ip: "10.9.8.50", port: 2049 } },
    { local: { ip: "10.9.8.50", port: 2050 }, remote: { ip: "10.9.8.50", port: 58086 } },
  ]);
  assert.equal(tracked.omittedCount, 0);
});

test("another address's connections and IPv6 ones are not the VIP's", () => {
  const tracked = parseEstablished(CAPTURED, "10.9.8.51");
  assert.deepEqual(
    tracked.connections.map((c) => `${c.local.port}>${c.remote.port}`),
    ["58542>2050", "2050>58542"],
  );
  assert.deepEqual(parseEstablished("", "10.9.8.50"), { connections: [], omittedCount: 0 });
});

test("past the bound, connections are counted, not kept", () => {
  // The captured form with Send-Q 1, as a connection with a byte not yet acknowledged has.
  const line = "0      1      10.109.1.50:7998  10.109.1.201:51234\n";
  const tracked = parseEstablished(line.repeat(5), "10.109.1.50", 3);
  assert.equal(tracked.connections.length, 3);
  assert.equal(tracked.omittedCount, 2);
  assert.deepEqual(tracked.connections[0], {
    local: { ip: "10.109.1.50", port: 7998 },
    remote: { ip: "10.109.1.201", port: 51234 },
  });
});

test("a line ss would not print is refused, naming it", () => {
  for (const line of [
    "State Recv-Q",
    "0 0 10.9.8.50:99999 10.9.8.1:1",
    "0 0 10.9.8.300:1 10.9.8.1:1",
    "0 0 10.9.8.50:1",
  ]) {
    assert.throws(
      () => parseEstablished(line, "10.9.8.50"),
      (error: unknown) => error instanceof TcpConnectionsParseError && error.line === line,
      line,
    );
  }
});

test("ss is asked for the VIP's established connections only, so the kernel filters", () => {
  assert.deepEqual(establishedArgv("10.1.1.50"), ["ss", "-tnH", "state", "established", "src", "10.1.1.50"]);
  assert.throws(() => establishedArgv("10.1.1.500"), /not an IPv4 address/);
});
