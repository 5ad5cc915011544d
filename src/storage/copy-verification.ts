/**
 * The pure part of a copy's verification (chunk-mover.ts): which blocks of the copy have not yet been
 * seen equal to their source, and the runs they form (what a round recopies).
 *
 * Why one equal sighting suffices, under a steady writer whose hot blocks are often in flight at the
 * moment of a checksum snapshot: once block k of the target B reads equal to the source A, nothing
 * but client writes changes B's k afterwards, because
 *   - the chunk's copy requests have all returned before verification starts, and a round recopies
 *     only blocks never yet seen equal;
 *   - a copy request of an earlier generation (one the mover gave up on) is refused on B: a restart
 *     begins a new generation, and a copy writes only while its own generation is filling;
 *   - once filling has ended B takes no copy at all.
 * Every client write is sent to both A and B while B is filling, and one that fails on B records a
 * mirror fault, which the switch refuses; two writes to one block land in the same order on both as
 * long as they are not in flight at once (the assumption that keeps any two replicas equal). So from
 * the sighting on A and B see the same writes to k and end equal: if a write lands on either after
 * the sighting, both end with the last one; otherwise both keep what was seen. A difference seen
 * later in a sighted block is a write in flight, not a bad copy: it needs no recopy, and restarting
 * the chunk for it would start a healthy copy over.
 *
 * Both passes follow this rule. The first, while B fills, recopies blocks never yet seen equal; the
 * second, after filling has ended, only compares (B takes no copy any more) and starts again from
 * every block, leaning on nothing the first one saw.
 *
 * "Touched since the copy began" means since B began filling this generation: the fresh bitmap is
 * in memory, per generation, and set only once a client write has landed on B. So a copy may put an
 * older value over a write that landed on B before a restart's new generation began; verification
 * sees that block differ and recopies it. It cannot see it when that write's twin to A was still in
 * flight (A retrying) while the copy and the checksums read A: A and B then look equal until it
 * lands on A, which no sighting, one or all in one round, would tell apart.
 */

/** The blocks of `unverified` (ascending) whose checksums still differ between source and target. */
export function stillUnverified(
  unverified: readonly number[],
  source: Uint32Array,
  target: Uint32Array,
): number[] {
  return unverified.filter((block) => source[block] === undefined || source[block] !== target[block]);
}

/** Every block of a chunk of `blockCount` blocks, the set a verification starts from. */
export function allBlocks(blockCount: number): number[] {
  return Array.from({ length: blockCount }, (_, block) => block);
}

/** Ascending block indexes as [start, count] runs of consecutive blocks. */
export function blockRuns(blocks: readonly number[]): [number, number][] {
  const runs: [number, number][] = [];
  for (const block of blocks) {
    const last = runs[runs.length - 1];
    if (last !== undefined && last[0] + last[1] === block) last[1]++;
    else runs.push([block, 1]);
  }
  return runs;
}
