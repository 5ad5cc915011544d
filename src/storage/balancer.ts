/**
 * The storage balancer, on the master: every interval it reads the census and the servers' published
 * loads, plans (balance-plan.ts) and hands each planned move to the chunk mover (writes go to both
 * copies while a chunk is copied; a failed mirror write restarts that chunk's copy; a new master
 * resumes it). Automatic by default; `plan()` alone is what `storage balance --plan` shows.
 */
import { type Logger, pino } from "pino";
import type { CoordinationStore } from "../store/index.ts";
import { type Clock, systemClock } from "../util/clock.ts";
import { balanceInput } from "./balance-input.ts";
import {
  BALANCE_POLICY_DEFAULT,
  type BalanceInput,
  type BalanceMove,
  type BalancePlan,
  type BalancePolicy,
  loadRatio,
  planBalance,
  serverLoads,
} from "./balance-plan.ts";
import { takeCensus } from "./chunk-census.ts";
import type { ChunkMover } from "./chunk-mover.ts";
import type { ServerRegistry } from "./server-registry.ts";
import type { TierEvent, TierEventSink } from "./tier-events.ts";
import { readLoadRecords } from "./tier-status.ts";

export const BALANCE_INTERVAL_MS_DEFAULT = 5000;

export interface BalancerOptions {
  readonly store: CoordinationStore;
  readonly registry: ServerRegistry;
  readonly mover: ChunkMover;
  readonly policy?: BalancePolicy;
  /** Plan and move on a timer; off: only on request. */
  readonly auto?: boolean;
  readonly intervalMs?: number;
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Told of every move it starts, with why (for the cluster's event stream). */
  readonly onEvent?: TierEventSink;
}

/** The balancer's input as the store has it now: the census and the fresh loads the servers published. */
export async function readBalanceInput(
  store: CoordinationStore,
  registry: ServerRegistry,
  log?: Logger,
): Promise<BalanceInput> {
  const [census, loads] = await Promise.all([takeCensus(store), readLoadRecords(store, log)]);
  return balanceInput(census, loads, registry.servers());
}

/** Max over mean of the servers' loads as the store has them now. */
export async function currentLoadRatio(store: CoordinationStore, registry: ServerRegistry): Promise<number> {
  return loadRatio([...serverLoads(await readBalanceInput(store, registry)).values()]);
}

function balanceEvent(move: BalanceMove): TierEvent {
  const chunk = `${move.volumeId}#${move.chunkIndex}`;
  const why =
    move.why === "hot"
      ? `server ${move.from} is hot (${move.fromLoad.toFixed(1)} requests/s against ${move.toLoad.toFixed(1)} on ${move.to})`
      : `server ${move.from} is fuller than the balancer's full share`;
  return {
    kind: "balance",
    cause: move.why,
    subject: chunk,
    reason: `${why}: chunk ${chunk} moves from ${move.from} to ${move.to}`,
    details: { volumeId: move.volumeId, chunkIndex: move.chunkIndex, from: move.from, to: move.to },
  };
}

export class StorageBalancer implements AsyncDisposable {
  private readonly options: BalancerOptions;
  private readonly policy: BalancePolicy;
  private readonly log: Logger;
  private timer: Disposable | undefined;
  private running = false;
  private closed = false;
  private readonly moves = new Set<Promise<void>>();
  /** Moves made and failed since start, for status and tests. */
  readonly counters = { planned: 0, moved: 0, failed: 0 };

  constructor(options: BalancerOptions) {
    this.options = options;
    this.policy = options.policy ?? BALANCE_POLICY_DEFAULT;
    this.log = (options.logger ?? pino({ level: "silent" })).child({ component: "balancer" });
  }

  start(): void {
    if (this.options.auto === false) return;
    this.timer ??= (this.options.clock ?? systemClock).every(
      this.options.intervalMs ?? BALANCE_INTERVAL_MS_DEFAULT,
      () => {
        void this.applyOnce().catch((error: unknown) =>
          this.log.warn({ err: error }, "balancing pass failed"),
        );
      },
    );
  }

  /** What it would move now and why. */
  async plan(): Promise<BalancePlan> {
    return planBalance(
      await readBalanceInput(this.options.store, this.options.registry, this.log),
      this.policy,
    );
  }

  /** Plans once and starts the planned moves (not waiting for them); one pass at a time. */
  async applyOnce(): Promise<BalancePlan | undefined> {
    if (this.running || this.closed) return undefined;
    this.running = true;
    try {
      const plan = await this.plan();
      for (const move of plan.moves) {
        this.counters.planned++;
        this.log.info(move, "balancing: moving a chunk");
        this.options.onEvent?.(balanceEvent(move));
        const task = this.options.mover
          .move({
            volumeId: move.volumeId,
            chunkIndex: move.chunkIndex,
            from: move.from,
            to: move.to,
            reason: "rebalance",
            keepSource: false,
          })
          .then(() => {
            this.counters.moved++;
          })
          .catch((error: unknown) => {
            this.counters.failed++;
            this.log.warn({ err: error, move }, "balancing move failed");
          })
          .finally(() => this.moves.delete(task));
        this.moves.add(task);
      }
      return plan;
    } finally {
      this.running = false;
    }
  }

  /** Resolves once the moves started so far have ended. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.moves]);
  }

  /** Plans no more; moves under way go on (they are resumable, and a new master resumes them). */
  async close(): Promise<void> {
    this.closed = true;
    this.timer?.[Symbol.dispose]();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
