/**
 * Follows every key under a prefix for as long as it is wanted: a snapshot, then the changes after it.
 * A watch that breaks (etcd restarted, history compacted, the network gone) is replaced by a fresh
 * snapshot and a new watch, with backoff, so a follower never silently stops following.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import { type CoordinationStore, type KeyValue, StoreError, type Watch, type WatchEvent } from "./types.ts";

export interface FollowHandlers {
  /** The whole prefix at `revision`: on start, and again after every broken watch. */
  onSnapshot(kvs: readonly KeyValue[], revision: number): void;
  onEvent(event: WatchEvent): void;
}

export interface Follower extends AsyncDisposable {
  close(): Promise<void>;
}

const RETRY_DELAY_MS_MIN = 50;
const RETRY_DELAY_MS_MAX = 2000;
const START_ATTEMPTS_MAX = 5;

/**
 * Starts following. The first snapshot is taken before this resolves (its failure rejects); later
 * failures are logged and retried until `close`.
 */
export async function followPrefix(
  store: CoordinationStore,
  prefix: string,
  handlers: FollowHandlers,
  log: Logger,
): Promise<Follower> {
  let watch: Watch | undefined;
  let closed = false;
  let restarting: Promise<void> | undefined;

  const start = async (): Promise<void> => {
    const { kvs, revision } = await store.range(prefix);
    if (closed) return;
    handlers.onSnapshot(kvs, revision);
    watch = await store.watch(prefix, revision + 1, (event) => handlers.onEvent(event), {
      onError: (error: StoreError) => {
        log.warn({ err: error, prefix }, "watch broke; taking a new snapshot");
        restarting ??= restart().finally(() => {
          restarting = undefined;
        });
      },
    });
    if (closed) await watch.cancel();
  };

  const restart = async (): Promise<void> => {
    for (let delay = RETRY_DELAY_MS_MIN; !closed; delay = Math.min(delay * 2, RETRY_DELAY_MS_MAX)) {
      try {
        await start();
        return;
      } catch (error) {
        log.warn({ err: error, prefix, retryInMs: delay }, "cannot follow the store yet");
        await sleep(delay);
      }
    }
  };

  // A compaction between the snapshot and the watch is no reason to fail: take a new snapshot.
  for (let attempt = 1; ; attempt++) {
    try {
      await start();
      break;
    } catch (error) {
      if (!(error instanceof StoreError && error.code === "COMPACTED") || attempt >= START_ATTEMPTS_MAX)
        throw error;
      log.warn({ err: error, prefix }, "history compacted under the first snapshot; taking another");
    }
  }
  const close = async (): Promise<void> => {
    closed = true;
    await restarting;
    await watch?.cancel();
  };
  return { close, [Symbol.asyncDispose]: close };
}
