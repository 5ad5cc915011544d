import assert from "node:assert/strict";
import { test } from "node:test";
import type { TcpConnection } from "../../../src/net/tcp-connections.ts";
import { parseTickleReport, TICKLE_PAIRS_PER_RUN_MAX, tickleArgvs } from "../../../src/net/tickle.ts";

const connection = (clientPort: number): TcpConnection => ({
  local: { ip: "10.1.1.50", port: 2049 },
  remote: { ip: "10.1.1.201", port: clientPort },
});

test("each connection is tickled from the VIP's end to the client's, three times", () => {
  assert.deepEqual(tickleArgvs("/bin/tickle", "10.1.1.50", [connection(700), connection(701)]), [
    ["/bin/tickle", "3", "10.1.1.50:2049", "10.1.1.201:700", "10.1.1.50:2049", "10.1.1.201:701"],
  ]);
  assert.deepEqual(tickleArgvs("/bin/tickle", "10.1.1.50", []), []);
});

test("many connections are split into runs of a bounded size", () => {
  const many = Array.from({ length: TICKLE_PAIRS_PER_RUN_MAX + 1 }, (_, i) => connection(1000 + i));
  const argvs = tickleArgvs("/bin/tickle", "10.1.1.50", many);
  assert.deepEqual(
    argvs.map((argv) => (argv.length - 2) / 2),
    [TICKLE_PAIRS_PER_RUN_MAX, 1],
  );
  assert.equal(argvs[1]?.at(-1), `10.1.1.201:${1000 + TICKLE_PAIRS_PER_RUN_MAX}`);
});

test("a connection on another address is a bug: its client would answer that address", () => {
  assert.throws(() => tickleArgvs("/bin/tickle", "10.1.1.51", [connection(700)]), /not on VIP 10.1.1.51/);
});

test("the program's report is read, and its absence noticed", () => {
  assert.deepEqual(parseTickleReport("sent 6 of 6\n"), { sentCount: 6, totalCount: 6 });
  assert.equal(parseTickleReport(""), undefined);
});
