import { BLOCK_BYTES, BLOCK_RUN_COUNT_MAX } from "../block/index.ts";

/**
 * Sorts single blocks by position and joins neighbours into runs of at most BLOCK_RUN_COUNT_MAX
 * blocks, each a view of one buffer holding them all, so that a batch costs one allocation and one
 * device write per run.
 */
export function coalesceBlocks(
  blocks: Array<{ block: number; bytes: Uint8Array }>,
): Array<{ start: number; data: Uint8Array }> {
  blocks.sort((a, b) => a.block - b.block);
  const whole = new Uint8Array(blocks.length * BLOCK_BYTES);
  const runs: Array<{ start: number; data: Uint8Array }> = [];
  let i = 0;
  while (i < blocks.length) {
    let j = i + 1;
    while (j < blocks.length && j - i < BLOCK_RUN_COUNT_MAX && blocks[j]!.block === blocks[j - 1]!.block + 1)
      j++;
    for (let k = i; k < j; k++) whole.set(blocks[k]!.bytes, k * BLOCK_BYTES);
    runs.push({ start: blocks[i]!.block, data: whole.subarray(i * BLOCK_BYTES, j * BLOCK_BYTES) });
    i = j;
  }
  return runs;
}
