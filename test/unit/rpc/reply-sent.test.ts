// A handler's `sent` hook (how READ hands its reused buffer back): called once per reply, after the
// reply's bytes left, and also when the reply can no longer be sent.
import assert from "node:assert/strict";
import { test } from "node:test";
import { RpcClient, type RpcProgram, RpcServer, resultsOf } from "../../../src/rpc/index.ts";
import { XdrWriter } from "../../../src/xdr/index.ts";
import { turnsUntil } from "../../support/raw-peer.ts";

const PROGRAM = 0x2000_0002;
const REPLY_BYTES = 1024 * 1024;

interface SentProgram {
  readonly program: RpcProgram;
  readonly sentCount: () => number;
  /** Calls whose handler ran (a connection cut early may leave some unread). */
  readonly startedCount: () => number;
  /** Holds replies until called; set while `hold` is true. */
  readonly release: () => void;
}

/** Replies to procedure 1 with REPLY_BYTES of the call's u32 argument's low byte and a `sent` hook. */
function sentProgram(hold: boolean): SentProgram {
  let sent = 0;
  let started = 0;
  let open = !hold;
  const waiting: (() => void)[] = [];
  return {
    sentCount: () => sent,
    startedCount: () => started,
    release: () => {
      open = true;
      for (const go of waiting.splice(0)) go();
    },
    program: {
      program: PROGRAM,
      version: 1,
      name: "sent",
      handler: (procedure) =>
        procedure !== 1
          ? undefined
          : async (call) => {
              const value = call.args.u32();
              started++;
              if (!open) await new Promise<void>((resolve) => waiting.push(resolve));
              const payload = new Uint8Array(REPLY_BYTES).fill(value & 0xff);
              const head = new XdrWriter().u32(payload.length).bytes();
              return { kind: "success", body: [head, payload], sent: () => sent++ };
            },
    },
  };
}

const u32 = (value: number): Uint8Array => new XdrWriter().u32(value).bytes();

test("server: a reply's sent hook runs once per reply, after its bytes are out", async () => {
  const toy = sentProgram(false);
  const server = new RpcServer({ programs: [toy.program], name: "sent" });
  const { port } = await server.listen("127.0.0.1", 0);
  try {
    await using client = await RpcClient.connect("127.0.0.1", port);
    const replies = await Promise.all(
      Array.from({ length: 8 }, (_, i) => client.call(PROGRAM, 1, 1, u32(i))),
    );
    replies.forEach((reply, i) => {
      const results = resultsOf(reply);
      const length = results.u32();
      assert.equal(length, REPLY_BYTES);
      const bytes = results.opaqueFixed(length);
      assert.ok(
        bytes.every((b) => b === i),
        `reply ${i} carries its own bytes`,
      );
    });
    await turnsUntil(() => toy.sentCount() === 8);
    assert.equal(toy.sentCount(), 8);
  } finally {
    await server.close();
  }
});

test("server: a reply whose connection is gone still runs its sent hook", async () => {
  const toy = sentProgram(true);
  const server = new RpcServer({ programs: [toy.program], name: "sent" });
  const { port } = await server.listen("127.0.0.1", 0);
  try {
    const client = await RpcClient.connect("127.0.0.1", port);
    const pending = Array.from({ length: 4 }, (_, i) =>
      client.call(PROGRAM, 1, 1, u32(i)).catch(() => "cut"),
    );
    await turnsUntil(() => toy.startedCount() > 0);
    await client.close();
    assert.deepEqual(await Promise.all(pending), ["cut", "cut", "cut", "cut"]);
    // The server finishes calls in flight before it lets a closed connection go.
    toy.release();
    await turnsUntil(() => server.connectionCount === 0);
    await turnsUntil(() => toy.sentCount() === toy.startedCount());
    assert.ok(toy.startedCount() >= 1);
    assert.equal(toy.sentCount(), toy.startedCount());
  } finally {
    await server.close();
  }
});
