/**
 * Storage drains started through the admin API: each runs in the background in this process (its
 * moves through this process's chunk mover) and is watched through `GET /v1/storage`. One job per
 * server at a time; finished jobs are kept (bounded) so an operator polling late still sees how the
 * drain ended.
 */
import type { Logger } from "pino";
import type { ChunkMover } from "../storage/chunk-mover.ts";
import { type DrainProgress, drainServer } from "../storage/drain.ts";
import type { ServerRegistry } from "../storage/server-registry.ts";
import type { CoordinationStore } from "../store/index.ts";

export interface DrainJob {
  readonly serverId: string;
  readonly state: "running" | "done" | "failed";
  readonly progress: DrainProgress;
  readonly startedAtMs: number;
  readonly endedAtMs: number | null;
  /** Why it failed (no room elsewhere, a server unreachable...). */
  readonly error: string | null;
}

/** Finished jobs kept for operators polling late. */
const FINISHED_KEPT = 32;

export class DrainJobs {
  private readonly jobs = new Map<string, DrainJob>();
  private readonly running = new Set<Promise<void>>();
  private readonly store: CoordinationStore;
  private readonly registry: ServerRegistry;
  private readonly log: Logger;
  private readonly newMover: (onBytes: (bytes: number) => void) => ChunkMover;

  constructor(options: {
    store: CoordinationStore;
    registry: ServerRegistry;
    logger: Logger;
    /** A mover reporting the bytes it copies (one per drain, so each counts its own). */
    newMover: (onBytes: (bytes: number) => void) => ChunkMover;
  }) {
    this.store = options.store;
    this.registry = options.registry;
    this.log = options.logger.child({ component: "drain-jobs" });
    this.newMover = options.newMover;
  }

  /** Starts draining `serverId`; undefined when a drain of it is already running. */
  start(serverId: string): DrainJob | undefined {
    if (this.jobs.get(serverId)?.state === "running") return undefined;
    const startedAtMs = Date.now();
    const set = (job: Partial<DrainJob>): void => {
      const previous = this.jobs.get(serverId);
      if (previous === undefined) return;
      this.jobs.set(serverId, { ...previous, ...job });
    };
    let moved = 0;
    // The drain reports per finished chunk; the bytes of chunks in flight show as the mover copies them.
    const mover = this.newMover((bytes) => {
      moved += bytes;
      const progress = this.jobs.get(serverId)?.progress;
      if (progress !== undefined)
        set({ progress: { ...progress, bytesDone: Math.min(progress.bytesTotal, moved) } });
    });
    this.jobs.delete(serverId); // a re-run replaces the finished job, and goes last in the map's order
    this.jobs.set(serverId, {
      serverId,
      state: "running",
      progress: { chunksTotal: 0, chunksDone: 0, bytesTotal: 0, bytesDone: 0 },
      startedAtMs,
      endedAtMs: null,
      error: null,
    });
    const work = drainServer(
      {
        store: this.store,
        registry: this.registry,
        mover,
        logger: this.log,
        onProgress: (progress) => set({ progress }),
        bytesMoved: () => moved,
      },
      serverId,
    ).then(
      (progress) => set({ state: "done", progress, endedAtMs: Date.now() }),
      (error: unknown) => {
        const message = error instanceof Error ? error.message : String(error);
        this.log.warn({ serverId, err: message }, "drain failed");
        set({ state: "failed", error: message, endedAtMs: Date.now() });
      },
    );
    const tracked = work.finally(() => {
      this.running.delete(tracked);
      this.forgetOldest();
    });
    this.running.add(tracked);
    return this.jobs.get(serverId);
  }

  /** Every job, oldest first. */
  list(): DrainJob[] {
    return [...this.jobs.values()];
  }

  /** Waits for running drains (tests, shutdown). */
  async settled(): Promise<void> {
    await Promise.all(this.running);
  }

  private forgetOldest(): void {
    const finished = [...this.jobs.values()].filter((j) => j.state !== "running");
    for (const job of finished.slice(0, Math.max(0, finished.length - FINISHED_KEPT)))
      this.jobs.delete(job.serverId);
  }
}
