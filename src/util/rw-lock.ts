/**
 * An async readers-writer lock with FIFO fairness: a waiting writer holds back later readers, so a
 * steady stream of reads cannot starve a commit.
 */
export class RwLock {
  private readers = 0;
  private writer = false;
  private readonly queue: Array<{ exclusive: boolean; wake: () => void }> = [];

  async shared<T>(work: () => Promise<T>): Promise<T> {
    await this.acquire(false);
    try {
      return await work();
    } finally {
      this.readers--;
      this.pump();
    }
  }

  async exclusive<T>(work: () => Promise<T>): Promise<T> {
    await this.acquire(true);
    try {
      return await work();
    } finally {
      this.writer = false;
      this.pump();
    }
  }

  private acquire(exclusive: boolean): Promise<void> {
    if (this.queue.length === 0 && this.canEnter(exclusive)) {
      this.enter(exclusive);
      return Promise.resolve();
    }
    return new Promise((resolve) => this.queue.push({ exclusive, wake: resolve }));
  }

  private canEnter(exclusive: boolean): boolean {
    return exclusive ? !this.writer && this.readers === 0 : !this.writer;
  }

  private enter(exclusive: boolean): void {
    if (exclusive) this.writer = true;
    else this.readers++;
  }

  private pump(): void {
    while (this.queue.length > 0) {
      const next = this.queue[0]!;
      if (!this.canEnter(next.exclusive)) return;
      this.queue.shift();
      this.enter(next.exclusive);
      next.wake();
    }
  }
}
