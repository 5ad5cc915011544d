import { assert } from "../util/assert.ts";

interface Done<T> {
  readonly state: "done";
  readonly reply: T;
  readonly bytes: number;
}

interface Running<T> {
  readonly state: "running";
  readonly reply: Promise<T>;
}

export const DRC_ENTRIES_MAX_DEFAULT = 8192;
export const DRC_BYTES_MAX_DEFAULT = 32 * 1024 * 1024;

/**
 * The duplicate request cache: a non-idempotent call is executed once per key (client address, xid,
 * procedure, checksum of the arguments). A retransmission that arrives while the original runs waits
 * for its reply; one that arrives later gets the stored reply. Bounded by entries and bytes, oldest
 * first out. The key has no port, so it survives the client's reconnect.
 */
export class DuplicateRequestCache<T> {
  private readonly entries = new Map<string, Done<T> | Running<T>>();
  /**
   * Keys of done entries, oldest first from `orderHead`: eviction pops from here instead of
   * iterating the Map, whose iteration walks every hole its deletions left at the front.
   */
  private order: string[] = [];
  private orderHead = 0;
  private bytes = 0;
  private readonly entriesMax: number;
  private readonly bytesMax: number;
  hits = 0;

  constructor(options: { entriesMax?: number; bytesMax?: number } = {}) {
    this.entriesMax = options.entriesMax ?? DRC_ENTRIES_MAX_DEFAULT;
    this.bytesMax = options.bytesMax ?? DRC_BYTES_MAX_DEFAULT;
    assert(this.entriesMax >= 1 && this.bytesMax >= 1, "duplicate request cache bounds must be positive");
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * Runs `work` unless `key` ran or is running. `measure` says how many bytes a reply holds, or null
   * when it must not be cached (a JUKEBOX answer, say): the next retransmission then runs again.
   */
  async run(key: string, work: () => Promise<T>, measure: (reply: T) => number | null): Promise<T> {
    const known = this.entries.get(key);
    if (known !== undefined) {
      this.hits++;
      return known.state === "done" ? known.reply : known.reply;
    }
    const running = work();
    this.entries.set(key, { state: "running", reply: running });
    let reply: T;
    try {
      reply = await running;
    } catch (error) {
      this.entries.delete(key);
      throw error;
    }
    const bytes = measure(reply);
    if (bytes === null) this.entries.delete(key);
    else {
      this.entries.set(key, { state: "done", reply, bytes });
      this.order.push(key);
      this.bytes += bytes;
      this.evict();
    }
    return reply;
  }

  private evict(): void {
    while (this.entries.size > this.entriesMax || this.bytes > this.bytesMax) {
      if (this.orderHead >= this.order.length) return; // only running entries are left
      const key = this.order[this.orderHead++]!;
      const entry = this.entries.get(key);
      assert(entry !== undefined && entry.state === "done", "the eviction order names a done entry");
      this.entries.delete(key);
      this.bytes -= entry.bytes;
    }
    if (this.orderHead > 1024 && this.orderHead * 2 > this.order.length) {
      this.order = this.order.slice(this.orderHead);
      this.orderHead = 0;
    }
  }
}
