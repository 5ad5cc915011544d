import type { Clock } from "../util/clock.ts";

export interface MkfsOptions {
  readonly clock?: Clock;
}

export interface MountOptions {
  /** Bound on cached metadata blocks, in bytes (default 256 MiB). */
  readonly cacheBytes?: number;
  readonly clock?: Clock;
  /** How often a transaction group commits on its own (default 500 ms); 0 turns the timer off. */
  readonly txgIntervalMs?: number;
}

export interface FsckOptions {
  readonly repair: boolean;
  /** Called now and then during the walk: blocks checked so far, of the blocks the volume uses. */
  readonly onProgress?: (progress: { blocksChecked: number; blocksTotal: number }) => void;
}

export interface FsckProblem {
  /** A stable identifier of the kind of problem, e.g. "checksum", "nlink", "free-map". */
  readonly kind: string;
  readonly message: string;
  readonly blockIndex?: number;
  readonly ino?: number;
  readonly repaired: boolean;
}

export interface FsckReport {
  readonly problems: readonly FsckProblem[];
  readonly treeBlocks: number;
  readonly dataBlocks: number;
  readonly inodes: number;
  readonly dirEntries: number;
  readonly txg: number;
}

/** e2fsck-style exit status of a finished check. */
export function fsckExitCode(report: FsckReport): 0 | 1 | 4 {
  if (report.problems.length === 0) return 0;
  return report.problems.every((p) => p.repaired) ? 1 : 4;
}
