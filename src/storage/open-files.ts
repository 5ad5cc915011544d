import { assert } from "../util/assert.ts";

/** What the cache needs of a file. */
export interface CachedFile {
  readonly dirty: boolean;
  sync(): Promise<void>;
  close(): Promise<void>;
}

export interface OpenFileCacheOptions<F extends CachedFile> {
  /** Files open at once, counting those being opened and closed. */
  readonly openMax: number;
  readonly open: (key: string) => Promise<F>;
  /** A dirty file evicted could not be synced: its writes may be lost, and the next flush must say so. */
  readonly onSyncError: (key: string, error: unknown) => void;
  /** A close failed (after any sync succeeded): worth a log line, nothing more. */
  readonly onCloseError: (key: string, error: unknown) => void;
}

interface Entry<F> {
  readonly ready: Promise<F>;
  users: number;
  idleWaiters: (() => void)[];
}

/**
 * A bounded LRU of open files. A file in use is never closed under its user; a dirty file is synced
 * before it is closed. When every slot is in use, callers wait for one to come free.
 */
export class OpenFileCache<F extends CachedFile> {
  /** In LRU order: the first entry is the least recently used. */
  private readonly entries = new Map<string, Entry<F>>();
  private readonly closing = new Map<string, Promise<void>>();
  private roomWaiters: (() => void)[] = [];
  private readonly options: OpenFileCacheOptions<F>;

  constructor(options: OpenFileCacheOptions<F>) {
    assert(Number.isInteger(options.openMax) && options.openMax >= 1, "openMax >= 1");
    this.options = options;
  }

  /** Files open, being opened or being closed: never above openMax. */
  get openCount(): number {
    return this.entries.size + this.closing.size;
  }

  /** Runs `work` with the file of `key`, opening it (and closing another) if needed. */
  async use<T>(key: string, work: (file: F) => Promise<T>): Promise<T> {
    const entry = await this.acquire(key);
    try {
      return await work(await entry.ready);
    } finally {
      this.release(entry);
    }
  }

  /** Syncs the file of `key` if it is open, or waits for its close (which syncs) if it is closing. */
  async syncIfOpen(key: string): Promise<void> {
    await this.closing.get(key);
    const entry = this.entries.get(key);
    if (entry === undefined) return;
    entry.users++;
    try {
      // A file that failed to open had nothing written through it.
      const file = await entry.ready.catch(() => undefined);
      await file?.sync();
    } finally {
      this.release(entry);
    }
  }

  /** Closes the file of `key` without syncing it (it is about to be deleted), once its users are done. */
  async discard(key: string): Promise<void> {
    await this.closing.get(key);
    const entry = this.entries.get(key);
    if (entry === undefined) return;
    this.entries.delete(key);
    await this.closeEntry(key, entry, false);
  }

  /** Syncs and closes every file; throws the first sync failure after closing them all. */
  async closeAll(): Promise<void> {
    let failure: unknown;
    const entries = [...this.entries];
    this.entries.clear();
    await Promise.all(
      entries.map(([key, entry]) =>
        this.closeEntry(key, entry, true).catch((error: unknown) => {
          failure ??= error;
        }),
      ),
    );
    await Promise.all(this.closing.values());
    if (failure !== undefined) throw failure;
  }

  private async acquire(key: string): Promise<Entry<F>> {
    for (;;) {
      const existing = this.entries.get(key);
      if (existing !== undefined) {
        // Most recently used goes last.
        this.entries.delete(key);
        this.entries.set(key, existing);
        existing.users++;
        return existing;
      }
      const closing = this.closing.get(key);
      if (closing !== undefined) {
        await closing;
        continue;
      }
      if (this.openCount < this.options.openMax) break;
      // One close at a time frees a slot; evicting more while one is closing would empty the cache.
      if (this.closing.size > 0 || !this.evictOne()) {
        await new Promise<void>((resolve) => this.roomWaiters.push(resolve));
      }
    }
    const ready = this.options.open(key);
    const entry: Entry<F> = { ready, users: 1, idleWaiters: [] };
    this.entries.set(key, entry);
    ready.catch(() => {
      // A failed open takes no slot; the next use tries again.
      if (this.entries.get(key) === entry) this.entries.delete(key);
      this.wakeRoomWaiters();
    });
    assert(this.openCount <= this.options.openMax, "open files stay within their bound");
    return entry;
  }

  private release(entry: Entry<F>): void {
    entry.users--;
    assert(entry.users >= 0, "file users never go negative");
    if (entry.users > 0) return;
    for (const wake of entry.idleWaiters.splice(0)) wake();
    this.wakeRoomWaiters();
  }

  /** Starts closing the least recently used file nobody is using; false if there is none. */
  private evictOne(): boolean {
    for (const [key, entry] of this.entries) {
      if (entry.users > 0) continue;
      this.entries.delete(key);
      void this.closeEntry(key, entry, true).catch(() => {
        // Reported through onSyncError already.
      });
      return true;
    }
    return false;
  }

  private closeEntry(key: string, entry: Entry<F>, sync: boolean): Promise<void> {
    const done = (async () => {
      while (entry.users > 0) await new Promise<void>((resolve) => entry.idleWaiters.push(resolve));
      let file: F;
      try {
        file = await entry.ready;
      } catch {
        return; // never opened: nothing to close
      }
      try {
        if (sync && file.dirty) await file.sync();
      } catch (error) {
        this.options.onSyncError(key, error);
        throw error;
      } finally {
        await file.close().catch((error: unknown) => this.options.onCloseError(key, error));
      }
    })();
    this.closing.set(key, done);
    void done
      .catch(() => undefined)
      .finally(() => {
        if (this.closing.get(key) === done) this.closing.delete(key);
        this.wakeRoomWaiters();
      });
    return done;
  }

  private wakeRoomWaiters(): void {
    for (const wake of this.roomWaiters.splice(0)) wake();
  }
}
