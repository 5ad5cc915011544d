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
      this.bytes += bytes;
      this.evict();
    }
    return reply;
  }

  private evict(): void {
    for (const [key, entry] of this.entries) {
      if (this.entries.size <= this.entriesMax && this.bytes <= this.bytesMax) return;
      if (entry.state === "running") continue;
      this.entries.delete(key);
      this.bytes -= entry.bytes;
    }
  }
}
