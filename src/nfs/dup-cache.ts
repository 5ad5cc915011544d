import { assert } from "../util/assert.ts";

interface Running<T> {
  readonly reply: Promise<T>;
}

export const DRC_ENTRIES_MAX_DEFAULT = 8192;
export const DRC_BYTES_MAX_DEFAULT = 32 * 1024 * 1024;

/**
 * Where a duplicate request cache keeps finished replies: bounded, oldest out first. In memory here;
 * a vserver keeps them in its service-state arena (src/service), so that they move with it.
 */
export interface ReplyStore<T> {
  get(key: string): T | undefined;
  /** Keeps a reply of about `bytes` bytes, evicting the oldest as its bounds require. */
  put(key: string, reply: T, bytes: number): void;
  readonly size: number;
}

/** Finished replies in a Map, evicted oldest first in O(1). */
export class MemoryReplyStore<T> implements ReplyStore<T> {
  private readonly entries = new Map<string, { readonly reply: T; readonly bytes: number }>();
  /**
   * Keys in the order they were put, oldest first from `orderHead`: eviction pops from here instead
   * of iterating the Map, whose iteration walks every hole its deletions left at the front.
   */
  private order: string[] = [];
  private orderHead = 0;
  private bytes = 0;
  private readonly entriesMax: number;
  private readonly bytesMax: number;

  constructor(options: { entriesMax?: number; bytesMax?: number } = {}) {
    this.entriesMax = options.entriesMax ?? DRC_ENTRIES_MAX_DEFAULT;
    this.bytesMax = options.bytesMax ?? DRC_BYTES_MAX_DEFAULT;
    assert(this.entriesMax >= 1 && this.bytesMax >= 1, "duplicate request cache bounds must be positive");
  }

  get size(): number {
    return this.entries.size;
  }

  get(key: string): T | undefined {
    return this.entries.get(key)?.reply;
  }

  put(key: string, reply: T, bytes: number): void {
    assert(!this.entries.has(key), "a reply is stored once per key");
    this.entries.set(key, { reply, bytes });
    this.order.push(key);
    this.bytes += bytes;
    while (this.entries.size > this.entriesMax || this.bytes > this.bytesMax) {
      const oldest = this.order[this.orderHead++];
      assert(oldest !== undefined, "the eviction order holds every stored key");
      const entry = this.entries.get(oldest);
      assert(entry !== undefined, "the eviction order names a stored entry");
      this.entries.delete(oldest);
      this.bytes -= entry.bytes;
    }
    if (this.orderHead > 1024 && this.orderHead * 2 > this.order.length) {
      this.order = this.order.slice(this.orderHead);
      this.orderHead = 0;
    }
  }
}

/**
 * The duplicate request cache: a non-idempotent call is executed once per key (client address, xid,
 * procedure, checksum of the arguments). A retransmission that arrives while the original runs waits
 * for its reply; one that arrives later gets the stored reply. The key has no port, so it survives
 * the client's reconnect.
 */
export class DuplicateRequestCache<T> {
  private readonly running = new Map<string, Running<T>>();
  private readonly done: ReplyStore<T>;
  hits = 0;

  constructor(done: ReplyStore<T> | { entriesMax?: number; bytesMax?: number } = {}) {
    this.done = "get" in done ? done : new MemoryReplyStore<T>(done);
  }

  /** Finished replies kept, plus calls running. */
  get size(): number {
    return this.done.size + this.running.size;
  }

  /** Calls running now (a suspend waits for them to end). */
  get runningCount(): number {
    return this.running.size;
  }

  /**
   * Runs `work` unless `key` ran or is running. `measure` says how many bytes a reply holds, or null
   * when it must not be cached (a JUKEBOX answer, say): the next retransmission then runs again.
   */
  async run(key: string, work: () => Promise<T>, measure: (reply: T) => number | null): Promise<T> {
    const stored = this.done.get(key);
    if (stored !== undefined) {
      this.hits++;
      return stored;
    }
    const known = this.running.get(key);
    if (known !== undefined) {
      this.hits++;
      return known.reply;
    }
    const reply = work();
    this.running.set(key, { reply });
    let result: T;
    try {
      result = await reply;
    } finally {
      this.running.delete(key);
    }
    const bytes = measure(result);
    if (bytes !== null) this.done.put(key, result, bytes);
    return result;
  }
}
