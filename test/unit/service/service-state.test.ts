import assert from "node:assert/strict";
import { test } from "node:test";
import { pino } from "pino";
import { DuplicateRequestCache } from "../../../src/nfs/dup-cache.ts";
import type { RpcCall, RpcOutcome, RpcProgram } from "../../../src/rpc/types.ts";
import { PagePool } from "../../../src/service/arena.ts";
import { CallGate } from "../../../src/service/call-gate.ts";
import {
  MoveListener,
  type MoveManifest,
  type MoveOffer,
  MoveSender,
} from "../../../src/service/move-channel.ts";
import { ServiceState } from "../../../src/service/service-state.ts";

const logger = pino({ level: "silent" });
const verifier = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
const success = (text: string): RpcOutcome => ({
  kind: "success",
  body: [new Uint8Array(Buffer.from(text))],
});
const textOf = (o: RpcOutcome | undefined): string =>
  o?.kind === "success" ? Buffer.concat(o.body.map((b) => Buffer.from(b))).toString() : String(o?.kind);

/** The state as pages, rebuilt in another pool, as a move does. */
function moved(state: ServiceState, pool = new PagePool(4096)): ServiceState {
  const manifest = state.arena.manifest();
  const images = new Map(manifest.pages.map((p) => [p, state.arena.seal(p)!]));
  return ServiceState.restore(pool, manifest, images);
}

test("service state: replies, mounts, clients and the verifier survive a move and a compaction", () => {
  const state = ServiceState.create(new PagePool(4096), 42, verifier);
  for (let i = 0; i < 3000; i++) state.replies.put(`k${i}`, success(`reply ${i}`.padEnd(300, ".")), 300);
  state.replies.put("garbage", { kind: "garbage-args" }, 64);
  state.mounts.add("10.0.0.1", "/");
  state.mounts.add("10.0.0.2", "/data");
  state.mounts.remove("10.0.0.2", "/data");
  state.mounts.add("10.0.0.3", "/");
  for (let i = 0; i < 5; i++) state.clients.seen("10.0.0.1");
  state.clients.seen("10.0.0.9");
  const copy = moved(state);
  assert.deepEqual(copy.writeVerifier, verifier);
  assert.equal(textOf(copy.replies.get("k2999")).trimEnd().replace(/\.+$/, ""), "reply 2999");
  assert.equal(copy.replies.get("garbage")?.kind, "garbage-args");
  assert.deepEqual(copy.mounts.list(), [
    { host: "10.0.0.1", path: "/" },
    { host: "10.0.0.3", path: "/" },
  ]);
  const client = copy.clients.list().find((c) => c.address === "10.0.0.1");
  assert.equal(client?.calls, 5);
  // Evict most replies, compact, move again: what is left is all there, in order.
  for (let i = 0; i < 3000; i++) copy.replies.put(`z${i}`, success("x"), 1);
  copy.compact();
  const twice = moved(copy);
  assert.equal(twice.replies.size, copy.replies.size);
  assert.equal(textOf(twice.replies.get("z2999")), "x");
  assert.deepEqual(twice.mounts.list(), copy.mounts.list());
  assert.ok(twice.stats().pages <= copy.stats().pages);
});

test("service state: a full arena evicts the oldest replies instead of failing, and a mounted client is kept", () => {
  const pool = new PagePool(8);
  const state = ServiceState.create(pool, 1, verifier, 8);
  state.mounts.add("10.1.1.1", "/");
  for (let i = 0; i < 5000; i++) state.replies.put(`k${i}`, success("r".repeat(500)), 500);
  assert.ok(state.replies.size > 100 && state.replies.size < 5000, `${state.replies.size} replies kept`);
  assert.equal(textOf(state.replies.get("k4999")), "r".repeat(500));
  assert.equal(state.replies.get("k0"), undefined);
  assert.deepEqual(state.mounts.list(), [{ host: "10.1.1.1", path: "/" }]);
  state.arena.check();
});

test("duplicate cache on the arena: a key runs once, and the stored reply is the same bytes", async () => {
  const state = ServiceState.create(new PagePool(64), 1, verifier);
  const cache = new DuplicateRequestCache<RpcOutcome>(state.replies);
  let runs = 0;
  const work = async (): Promise<RpcOutcome> => success(`reply ${++runs}`);
  assert.equal(textOf(await cache.run("a", work, () => 10)), "reply 1");
  assert.equal(textOf(await cache.run("a", work, () => 10)), "reply 1");
  assert.equal(runs, 1);
});

function program(handler: (call: RpcCall) => Promise<RpcOutcome>): RpcProgram {
  return { program: 1, version: 1, name: "p", handler: () => handler };
}

test("call gate: shut holds new calls and waits for those inside; open lets them go; abandon drops them", async () => {
  const gate = new CallGate(2);
  let release: () => void = () => undefined;
  const inner = program(
    (call) =>
      new Promise((resolve) => {
        if (call.xid === 1) release = () => resolve(success("slow"));
        else resolve(success(`fast ${call.xid}`));
      }),
  );
  const handler = gate.wrap(inner).handler(0)!;
  const call = (xid: number): RpcCall => ({ xid }) as RpcCall;
  const slow = handler(call(1));
  let drained = false;
  const draining = gate.shutAndDrain(5000).then(() => (drained = true));
  const held = handler(call(2));
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(drained, false, "the suspend waits for the call inside");
  assert.equal(gate.heldCount, 1);
  release();
  await draining;
  assert.equal(textOf(await slow), "slow");
  const third = handler(call(3)); // held too: the gate holds two
  assert.equal((await handler(call(4))).kind, "drop", "beyond its bound a held call is dropped");
  gate.open();
  assert.equal(textOf(await held), "fast 2");
  assert.equal(textOf(await third), "fast 3");
  await gate.shutAndDrain(1000);
  const late = handler(call(6));
  gate.abandon();
  assert.equal((await late).kind, "drop");
  assert.equal((await handler(call(7))).kind, "drop");
});

test("move channel: pages reach the target over an authenticated channel; a wrong secret is refused", async () => {
  const secret = new Uint8Array(32).fill(7);
  const source = ServiceState.create(new PagePool(64), 9, verifier);
  for (let i = 0; i < 500; i++) source.replies.put(`k${i}`, success(`r${i}`.padEnd(400, "-")), 400);
  const targetPool = new PagePool(64);
  let staged: ServiceState | undefined;
  const listener = await MoveListener.listen(
    "127.0.0.1",
    secret,
    {
      check: (offer: MoveOffer) => (offer.pages > 32 ? "too many pages" : undefined),
      stage: (_offer: MoveOffer, manifest: MoveManifest, images: ReadonlyMap<number, Uint8Array>) => {
        staged = ServiceState.restore(targetPool, manifest, images);
      },
    },
    logger,
  );
  try {
    await assert.rejects(MoveSender.open(listener.address, new Uint8Array(32).fill(8)));
    const sender = await MoveSender.open(listener.address, secret);
    const offer = {
      vserverId: "vs",
      tag: 9,
      generation: 2,
      moveId: "m1",
      from: "n1",
      pages: source.stats().pages,
      liveBytes: 0,
    };
    assert.equal(await sender.offer(offer), undefined);
    for (const page of source.arena.takeDirty()) await sender.page(page, source.arena.seal(page)!);
    const manifest = source.arena.manifest();
    await sender.final({ ...manifest, pages: [...manifest.pages] });
    sender.close();
    assert.equal(textOf(staged?.replies.get("k499")).replace(/-+$/, ""), "r499");
    assert.deepEqual(staged?.writeVerifier, verifier);
    const refused = await MoveSender.open(listener.address, secret);
    assert.equal(await refused.offer({ ...offer, pages: 100 }), "too many pages");
    refused.close();
    // A damaged page is refused by the target's checks, not taken.
    const bad = await MoveSender.open(listener.address, secret);
    await bad.offer(offer);
    for (const page of manifest.pages) {
      const image = source.arena.seal(page)!;
      image[100] = (image[100] ?? 0) ^ 0xff;
      await bad.page(page, image);
    }
    await assert.rejects(bad.final({ ...manifest, pages: [...manifest.pages] }), /checksum/);
    bad.close();
  } finally {
    await listener.close();
  }
});
