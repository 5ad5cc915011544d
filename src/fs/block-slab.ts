import { BLOCK_BYTES } from "../block/index.ts";
import { assertionFailed } from "../util/assert.ts";

/** Size of one slab: small buffers are cut from it instead of each being allocated on its own. */
const SLAB_BYTES = 1024 * 1024;

/**
 * Hands out zeroed buffers of whole blocks cut from large slabs. A typed array of a few KiB is
 * allocated outside the JS heap, one by one, and weighs on the collector; a thousand small writes
 * would make a thousand of them. A slab is never reused: it is freed when its last view goes.
 */
export class BlockSlab {
  private slab = new Uint8Array(0);
  private used = 0;

  /** A zeroed buffer of `blockCount` blocks, at most a slab's worth. */
  take(blockCount: number): Uint8Array {
    const bytes = blockCount * BLOCK_BYTES;
    if (!(bytes > 0 && bytes <= SLAB_BYTES)) assertionFailed(`slab buffer of ${bytes} bytes`);
    if (this.used + bytes > this.slab.length) {
      this.slab = new Uint8Array(SLAB_BYTES);
      this.used = 0;
    }
    const out = this.slab.subarray(this.used, this.used + bytes);
    this.used += bytes;
    return out;
  }
}
