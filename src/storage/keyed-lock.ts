import { assert } from "../util/assert.ts";
import { RwLock } from "../util/rw-lock.ts";

interface Entry {
  readonly lock: RwLock;
  /** Holders and waiters: the entry goes when it drops to zero, so the map holds only keys in use. */
  users: number;
}

/**
 * One FIFO readers-writer lock per key (a chunk, a volume). A caller's place in a key's queue is
 * taken synchronously when it calls `shared` or `exclusive`, so operations on one key start in the
 * order they were called.
 */
export class KeyedRwLock {
  private readonly entries = new Map<string, Entry>();

  /** Keys with a holder or a waiter. */
  get size(): number {
    return this.entries.size;
  }

  shared<T>(key: string, work: () => Promise<T>): Promise<T> {
    return this.run(key, work, false);
  }

  exclusive<T>(key: string, work: () => Promise<T>): Promise<T> {
    return this.run(key, work, true);
  }

  private async run<T>(key: string, work: () => Promise<T>, exclusive: boolean): Promise<T> {
    let entry = this.entries.get(key);
    if (entry === undefined) {
      entry = { lock: new RwLock(), users: 0 };
      this.entries.set(key, entry);
    }
    entry.users++;
    try {
      return await (exclusive ? entry.lock.exclusive(work) : entry.lock.shared(work));
    } finally {
      entry.users--;
      assert(entry.users >= 0, "lock users never go negative");
      if (entry.users === 0) this.entries.delete(key);
    }
  }
}
