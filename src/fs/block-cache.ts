import { BLOCK_BYTES } from "../block/index.ts";
import { assertionFailed } from "../util/assert.ts";
import type { TreeNode } from "./tree-node.ts";

export const CACHE_BYTES_DEFAULT = 256 * 1024 * 1024;

/** A bounded LRU of committed (immutable) tree nodes keyed by block index. */
export class NodeCache {
  private readonly nodes = new Map<number, TreeNode>();
  readonly entriesMax: number;
  hits = 0;
  misses = 0;

  constructor(cacheBytes: number = CACHE_BYTES_DEFAULT) {
    if (!(Number.isSafeInteger(cacheBytes) && cacheBytes >= 0))
      assertionFailed(`bad cache size ${cacheBytes}`);
    // A parsed node costs more than its 4 KiB block; count each as two blocks to stay near the bound.
    this.entriesMax = Math.max(16, Math.floor(cacheBytes / (2 * BLOCK_BYTES)));
  }

  get(blockIndex: number): TreeNode | undefined {
    const node = this.nodes.get(blockIndex);
    if (node === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    this.nodes.delete(blockIndex);
    this.nodes.set(blockIndex, node);
    return node;
  }

  set(blockIndex: number, node: TreeNode): void {
    this.nodes.delete(blockIndex);
    this.nodes.set(blockIndex, node);
    while (this.nodes.size > this.entriesMax) {
      const oldest = this.nodes.keys().next().value;
      if (oldest === undefined) break;
      this.nodes.delete(oldest);
    }
  }

  /** Forgets a block that was freed, so a later reuse of the block can never be served stale content. */
  forget(blockIndex: number): void {
    this.nodes.delete(blockIndex);
  }

  get size(): number {
    return this.nodes.size;
  }
}
