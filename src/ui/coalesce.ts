/**
 * Refreshes asked for faster than they finish (an event burst in a failover, plus the poll) run
 * one at a time, and one more after the current if any was asked for meanwhile: never two reads
 * at once, never a change missed, never a queue.
 */
export function coalesce(run: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  let again = false;
  const loop = async (): Promise<void> => {
    try {
      do {
        again = false;
        await run();
      } while (again);
    } finally {
      running = undefined;
    }
  };
  return () => {
    if (running !== undefined) {
      again = true;
      return running;
    }
    running = loop();
    return running;
  };
}
