/**
 * The control plane's pieces on the embedded store: one master at a time with a growing term, a
 * deposed master's writes refused, a node that cannot renew its lease gives up serving before the
 * lease expires in the store, and the master's view of nodes it has never seen.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { pino } from "pino";
import { clusterKeys, encodeRecord, MASTER_KEY, nodeSettingsSchema } from "../../../src/cluster/catalog.ts";
import { emptySnapshot } from "../../../src/cluster/cluster-view.ts";
import { Master } from "../../../src/cluster/master.ts";
import { MasterElection, termCompare } from "../../../src/cluster/master-election.ts";
import { NodeMembership } from "../../../src/cluster/node-membership.ts";
import { EmbeddedStore, type Lease } from "../../../src/store/index.ts";
import { ManualClock } from "../../../src/util/clock.ts";
import { nodeRecord } from "../../support/node-record.ts";

const silent = pino({ level: "silent" });

async function settle(ms = 20): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

function candidate(
  store: EmbeddedStore,
  nodeId: string,
  lease: () => Lease | undefined,
  terms: number[],
): MasterElection {
  return new MasterElection({
    store,
    nodeId,
    lease,
    pollMs: 10,
    onElected: (term) => terms.push(term),
    onDeposed: (term) => terms.push(-term),
    logger: silent,
  });
}

test("election: one master at a time; its lease gone, another takes over with a higher term", async () => {
  await using store = new EmbeddedStore();
  const leaseA: Lease | undefined = await store.grantLease(5000);
  let leaseB: Lease | undefined = await store.grantLease(5000);
  const termsA: number[] = [];
  const termsB: number[] = [];
  let a: Lease | undefined = leaseA;
  const electionA = candidate(store, "a", () => a, termsA);
  await settle();
  const electionB = candidate(store, "b", () => leaseB, termsB);
  await settle(60);
  assert.deepEqual(termsB, [], "b waits while a is master");
  assert.equal(termsA.length, 1);
  const firstTerm = termsA[0]!;
  assert.equal(electionA.currentTerm, firstTerm);
  assert.equal((await store.get(MASTER_KEY))?.createRevision, firstTerm);

  // a's lease runs out (here: revoked); a notices it lost the lease, b is elected with a higher term.
  await leaseA.revoke();
  a = undefined;
  electionA.leaseLost();
  await settle(60);
  assert.deepEqual(termsA, [firstTerm, -firstTerm]);
  assert.equal(termsB.length, 1);
  assert.ok(termsB[0]! > firstTerm, "the term only grows");

  // The deposed master's writes, fenced by its term, do not land.
  const stale = await store.txn(
    [termCompare(firstTerm)],
    [{ op: "put", key: "cluster/x", value: new Uint8Array(1) }],
  );
  assert.equal(stale.succeeded, false);
  const current = await store.txn(
    [termCompare(termsB[0]!)],
    [{ op: "put", key: "cluster/x", value: new Uint8Array(1) }],
  );
  assert.equal(current.succeeded, true);

  await electionB.close();
  assert.equal(await store.get(MASTER_KEY), undefined, "a clean close gives the seat up at once");
  leaseB = undefined;
  await electionA.close();
});

test("membership: a node that cannot renew stops trusting its lease before the store expires it", async () => {
  const clock = new ManualClock();
  await using store = new EmbeddedStore({ clock });
  let renewals = 0;
  let stall = false;
  // The store answers keep-alives only while `stall` is off: a node cut off from etcd.
  const grant = store.grantLease.bind(store);
  store.grantLease = async (ttlMs: number) => {
    const lease = await grant(ttlMs);
    return {
      id: lease.id,
      ttlMs: lease.ttlMs,
      keepAlive: () => {
        renewals++;
        return stall ? new Promise<void>(() => undefined) : lease.keepAlive();
      },
      revoke: () => lease.revoke(),
    };
  };
  let lost = 0;
  const membership = await NodeMembership.join({
    store,
    nodeId: "n1",
    leaseTtlMs: 1000,
    health: () => nodeRecord("n1", { vserversMax: 4, memoryFreeBytes: 0 }),
    onLost: () => lost++,
    clock,
  });
  const settings = await store.get(clusterKeys.nodeSettings("n1"));
  assert.ok(settings !== undefined, "a new node gets its settings, enabled");
  for (let i = 0; i < 40; i++) {
    clock.advance(50);
    await settle(1);
  }
  assert.ok(renewals >= 5, `renewed while healthy (${renewals})`);
  assert.equal(lost, 0);
  assert.ok(membership.held);

  stall = true;
  let lostAtMs = -1;
  const start = clock.monotonicMs();
  for (let i = 0; i < 40 && lostAtMs < 0; i++) {
    clock.advance(25);
    await settle(1);
    if (lost > 0) lostAtMs = clock.monotonicMs() - start;
  }
  assert.equal(lost, 1, "the node gives its lease up");
  assert.ok(lostAtMs > 0 && lostAtMs < 1000, `before the store would expire it (${lostAtMs} ms)`);
  assert.equal(membership.held, false);
  membership.abandon();
});

test("master: a node it has never seen alive keeps its vservers for the takeover grace", async () => {
  await using store = new EmbeddedStore();
  await store.put(
    clusterKeys.nodeSettings("n2"),
    encodeRecord(nodeSettingsSchema, { operatorState: "enabled", changedAtMs: 0 }),
  );
  const master = await Master.start({
    store,
    nodeId: "n1",
    term: 1,
    takeoverGraceMs: 60_000,
    logger: silent,
  });
  const snapshot = emptySnapshot();
  snapshot.settings.set("n2", { operatorState: "enabled", changedAtMs: 0 });
  const now = Date.now();
  const [early] = master.clusterState(snapshot, now).nodes;
  assert.equal(early?.alive, true, "counted alive (not failed over) during the grace");
  assert.equal(early?.operatorState, "disabled", "but receives nothing new");
  const [late] = master.clusterState(snapshot, now + 61_000).nodes;
  assert.equal(late?.alive, false, "dead once the grace is over");
  await master.close();
});
