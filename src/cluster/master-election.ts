/**
 * Master election through the store: the first node to create `cluster/master` under its lease is the
 * master, for as long as that key lives. The key's createRevision is the master's term: it only grows,
 * and every write the master makes compares it, so a deposed master (its lease gone, the key since
 * made by another) cannot write a single placement.
 */
import { type Logger, pino } from "pino";
import type { Compare, CoordinationStore, Lease } from "../store/index.ts";
import { assert } from "../util/assert.ts";
import { type Clock, systemClock } from "../util/clock.ts";
import { encodeRecord, MASTER_KEY, type MasterRecord, masterRecordSchema } from "./catalog.ts";

export interface ElectionOptions {
  readonly store: CoordinationStore;
  readonly nodeId: string;
  /** The node's membership lease, while held. */
  readonly lease: () => Lease | undefined;
  /** How often a node that is not master checks whether the seat is free. */
  readonly pollMs: number;
  /** Called when this node becomes master, with its term. */
  readonly onElected: (term: number) => void;
  /** Called when this node stops being master (the key is gone or another's). */
  readonly onDeposed: (term: number) => void;
  readonly clock?: Clock;
  readonly logger?: Logger;
}

/** The compare that fences a master's writes to its own term. */
export function termCompare(term: number): Compare {
  return { key: MASTER_KEY, target: "create", equals: term };
}

export class MasterElection implements AsyncDisposable {
  private term = 0;
  private lastTerm = 0;
  private busy = false;
  private closed = false;
  private readonly timer: Disposable;
  private readonly options: ElectionOptions;
  private readonly log: Logger;

  constructor(options: ElectionOptions) {
    this.options = options;
    this.log = (options.logger ?? pino({ level: "silent" })).child({ component: "election" });
    this.timer = (options.clock ?? systemClock).every(options.pollMs, () => this.check());
    this.check();
  }

  /** This node's term while it is master, else 0. */
  get currentTerm(): number {
    return this.term;
  }

  /** The lease was lost: whatever this node was, it is master no more. */
  leaseLost(): void {
    this.depose("the membership lease was lost");
  }

  private depose(reason: string): void {
    if (this.term === 0) return;
    const term = this.term;
    this.term = 0;
    this.log.warn({ term, reason }, "no longer master");
    this.options.onDeposed(term);
  }

  private check(): void {
    if (this.busy || this.closed) return;
    this.busy = true;
    this.attempt()
      .catch((error: unknown) => this.log.warn({ err: error }, "election step failed"))
      .finally(() => {
        this.busy = false;
      });
  }

  private async attempt(): Promise<void> {
    const { store, nodeId } = this.options;
    const lease = this.options.lease();
    if (lease === undefined) {
      this.depose("no membership lease");
      return;
    }
    if (this.term !== 0) {
      const kv = await store.get(MASTER_KEY);
      if (kv === undefined || kv.createRevision !== this.term)
        this.depose("the master key is gone or another's");
      return;
    }
    const record: MasterRecord = { nodeId, sinceMs: Date.now() };
    const result = await store.txn(
      [{ key: MASTER_KEY, target: "create", equals: 0 }],
      [{ op: "put", key: MASTER_KEY, value: encodeRecord(masterRecordSchema, record), lease: lease.id }],
    );
    if (!result.succeeded || this.closed || this.options.lease() !== lease) return;
    assert(result.revision > this.lastTerm, "a master term never goes back");
    this.term = result.revision;
    this.lastTerm = result.revision;
    this.log.info({ term: this.term }, "elected master");
    this.options.onElected(this.term);
  }

  /** Gives the seat up (if held) so another node takes it without waiting for the lease. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.timer[Symbol.dispose]();
    const term = this.term;
    this.depose("shutting down");
    if (term !== 0) {
      await this.options.store
        .txn([termCompare(term)], [{ op: "delete", key: MASTER_KEY }])
        .catch((error: unknown) => this.log.warn({ err: error }, "could not give up the master seat"));
    }
  }

  /** Stops without giving the seat up: another node takes it when this node's lease runs out. */
  abandon(): void {
    this.closed = true;
    this.timer[Symbol.dispose]();
    this.term = 0;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
