/**
 * The handover of a vserver's volumes between nodes. A node writes itself as the holder
 * (`cluster/holders/<vserverId>`, under its lease) before it fences anyone, and deletes the key only
 * once it has stopped taking calls, finished those in flight, committed and unmounted. A new owner
 * waits for that: a planned move never fences an owner that is still committing what it acknowledged.
 * It fences without waiting only when the key is gone with the holder's lease (a dead node), and after
 * `waitMs` for a holder that is alive but does not let go (logged as a forced takeover).
 */
import type { Logger } from "pino";
import { decodeRecord, encodeRecord } from "../storage/catalog.ts";
import type { Compare, CoordinationStore, LeaseId } from "../store/index.ts";
import { assert } from "../util/assert.ts";
import { clusterKeys, type HolderRecord, holderRecordSchema } from "./catalog.ts";
import { recordEvents } from "./event-log.ts";

/** How long a new owner waits for a live holder to hand over before it fences it anyway. */
export const HANDOVER_WAIT_MS_DEFAULT = 5_000;
/** A waiting owner looks again at least this often, even if it hears of no change. */
const HANDOVER_POLL_MS = 200;
/** Attempts to write the holder key that lose a race before the take fails (and is retried later). */
const HOLDER_RACES_MAX = 100;

/** This node's hold on a vserver: the exact value it wrote, so it never deletes another's. */
export interface HolderClaim {
  readonly key: string;
  readonly value: Uint8Array;
  /** Whether a live holder had to be fenced without a handover. */
  readonly forced: boolean;
  /** How long the take waited for the previous holder. */
  readonly waitedMs: number;
  /** The previous holder it waited for, if any. */
  readonly from: string | undefined;
}

export interface TakeHolderOptions {
  readonly store: CoordinationStore;
  readonly nodeId: string;
  readonly vserverId: string;
  readonly generation: number;
  readonly leaseId: LeaseId;
  readonly waitMs: number;
  readonly log: Logger;
  /** Resolves at the next change the node hears of, or after `ms`. */
  readonly nextChange: (ms: number) => Promise<void>;
  /** False once the vserver should no longer start here: the take gives up. */
  readonly stillWanted: () => boolean;
}

/**
 * Makes this node the vserver's holder once the previous one has handed over (or is gone, or the
 * wait ran out). Undefined when the vserver stopped being wanted meanwhile.
 */
export async function takeHolder(options: TakeHolderOptions): Promise<HolderClaim | undefined> {
  const { store, nodeId, log } = options;
  const key = clusterKeys.holder(options.vserverId);
  const record: HolderRecord = { nodeId, generation: options.generation, sinceMs: Date.now() };
  const value = encodeRecord(holderRecordSchema, record);
  const startedMs = performance.now();
  let from: string | undefined;
  for (let races = 0; races < HOLDER_RACES_MAX; ) {
    if (!options.stillWanted()) return undefined;
    const kv = await store.get(key);
    const holder = kv === undefined ? undefined : decodeRecord(holderRecordSchema, key, kv.value);
    const waitedMs = Math.round(performance.now() - startedMs);
    const other = holder !== undefined && holder.nodeId !== nodeId;
    if (other && waitedMs < options.waitMs) {
      if (from === undefined) log.info({ holder: holder.nodeId }, "waiting for the holder to hand over");
      from = holder.nodeId;
      await options.nextChange(Math.min(HANDOVER_POLL_MS, options.waitMs - waitedMs));
      continue;
    }
    const compare: Compare =
      kv === undefined
        ? { key, target: "version", equals: 0 }
        : { key, target: "mod", equals: kv.modRevision };
    const written = await store.txn([compare], [{ op: "put", key, value, lease: options.leaseId }]);
    if (!written.succeeded) {
      races++;
      continue;
    }
    if (other) {
      log.warn(
        { holder: holder.nodeId, waitedMs },
        "forced takeover: the holder did not hand over in time; fencing it",
      );
      recordEvents(
        store,
        [
          {
            atMs: Date.now(),
            kind: "fence",
            cause: "forced-takeover",
            subject: options.vserverId,
            by: nodeId,
            reason: `node ${holder.nodeId} did not hand over within ${options.waitMs} ms; ${nodeId} fences it and takes the volumes`,
            details: { from: holder.nodeId, to: nodeId, waitedMs },
          },
        ],
        log,
      );
    } else if (from !== undefined) log.info({ from, waitedMs }, "took over by handover");
    return { key, value, forced: other, waitedMs, from: other ? holder.nodeId : from };
  }
  throw new Error(`could not write the holder key of ${options.vserverId}: ${HOLDER_RACES_MAX} races lost`);
}

/** Lets go of a hold: deletes the key if it is still this claim's (a forced takeover replaced it otherwise). */
export async function releaseHolder(store: CoordinationStore, claim: HolderClaim): Promise<boolean> {
  assert(claim.value.length > 0, "a holder claim has its value");
  const result = await store.txn(
    [{ key: claim.key, target: "value", equals: claim.value }],
    [{ op: "delete", key: claim.key }],
  );
  return result.succeeded;
}
