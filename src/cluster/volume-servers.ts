/**
 * Which storage servers hold each volume's chunks, refreshed from the store's routes on a timer, for
 * the master's storage-path rule. A route changes when a chunk moves; a few seconds of staleness only
 * delays a move off a node that lost a path to a server that just received a chunk.
 */
import type { Logger } from "pino";
import { takeCensus } from "../storage/chunk-census.ts";
import type { CoordinationStore } from "../store/index.ts";
import { systemClock } from "../util/clock.ts";

export const VOLUME_SERVERS_REFRESH_MS_DEFAULT = 2000;

export class VolumeServers implements Disposable {
  private servers = new Map<string, readonly string[]>();
  private readonly timer: Disposable;
  private refreshing = false;
  private readonly store: CoordinationStore;
  private readonly log: Logger;

  constructor(store: CoordinationStore, log: Logger, refreshMs = VOLUME_SERVERS_REFRESH_MS_DEFAULT) {
    this.store = store;
    this.log = log;
    this.timer = systemClock.every(refreshMs, () => void this.refresh());
    void this.refresh();
  }

  serversOf(volumeId: string): readonly string[] | undefined {
    return this.servers.get(volumeId);
  }

  async refresh(): Promise<void> {
    if (this.refreshing) return;
    this.refreshing = true;
    try {
      const census = await takeCensus(this.store);
      const next = new Map<string, Set<string>>();
      for (const chunk of census.chunks) {
        const set = next.get(chunk.volume.volumeId) ?? new Set<string>();
        for (const replica of chunk.route.replicas) set.add(replica.serverId);
        next.set(chunk.volume.volumeId, set);
      }
      this.servers = new Map([...next].map(([id, set]) => [id, [...set].sort()]));
    } catch (error) {
      // The last census stays: a store hiccup must not make every vserver require nothing.
      this.log.warn({ err: error }, "could not refresh which servers hold each volume");
    } finally {
      this.refreshing = false;
    }
  }

  [Symbol.dispose](): void {
    this.timer[Symbol.dispose]();
  }
}
