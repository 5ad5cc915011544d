import { assert } from "./assert.ts";

/**
 * Large buffers of one size, reused once their user says it is done with one. A fresh large typed
 * array costs fresh pages from the kernel (a fault per 4 KiB page, zeroed) and a garbage collection
 * of as much again; the profiles of sequential READ and WRITE showed that as a fifth of their CPU.
 * A buffer nobody gives back is simply collected, so forgetting to give back costs only speed.
 *
 * Every buffer is tracked as lent or free (never both), so a buffer given back twice, or one the
 * pool never lent, is caught at once rather than handed to two users.
 */
export class BufferPool {
  readonly bufferBytes: number;
  readonly #countMax: number;
  readonly #free: Uint8Array[] = [];
  readonly #lent = new WeakSet<ArrayBufferLike>();

  constructor(bufferBytes: number, countMax: number) {
    assert(Number.isInteger(bufferBytes) && bufferBytes > 0, "pool buffers have a positive size");
    assert(Number.isInteger(countMax) && countMax >= 0, "the pool's bound is a count");
    this.bufferBytes = bufferBytes;
    this.#countMax = countMax;
  }

  get freeCount(): number {
    return this.#free.length;
  }

  /** A buffer of `bufferBytes`, holding whatever its last user left in it. */
  take(): Uint8Array {
    const buffer = this.#free.pop() ?? new Uint8Array(this.bufferBytes);
    this.#lent.add(buffer.buffer);
    return buffer;
  }

  /** Whether `view` lies in a buffer this pool lent and has not had back. */
  lent(view: Uint8Array): boolean {
    return this.#lent.has(view.buffer);
  }

  /**
   * Gives back the buffer that `view` (a view from its start) lies in; nothing may use it, or any
   * view of it, afterwards.
   */
  give(view: Uint8Array): void {
    assert(this.#lent.has(view.buffer), "a pooled buffer is given back once, and only if it was lent");
    assert(view.byteOffset === 0, "a pooled buffer is given back by a view from its start");
    this.#lent.delete(view.buffer);
    if (this.#free.length >= this.#countMax) return;
    this.#free.push(new Uint8Array(view.buffer, 0, this.bufferBytes));
  }
}
