/**
 * The node agent: reconciles this node towards the desired state. A vserver placed here is started
 * (its volume's owner epoch raised, which fences the previous owner at every storage server; the
 * file system mounted on the remote volume; NFS and MOUNT served on every VIP); a vserver placed
 * elsewhere, changed or deleted is stopped (listeners closed, calls in flight finished, committed,
 * unmounted). A node without its lease, or fenced, stops serving at once, without flushing.
 *
 * One task at a time per vserver; after each task the agent looks again, so a placement that changed
 * while a vserver was starting is acted on as soon as the start is done.
 */
import type { Logger } from "pino";
import type { BlockDeviceError } from "../block/index.ts";
import { RemoteBlockDevice } from "../block/remote-device.ts";
import { mkfs } from "../fs/index.ts";
import { parseExportRule } from "../nfs/exports.ts";
import { VserverRuntime } from "../service/vserver-runtime.ts";
import type { StorageClientSource } from "../storage/server-registry.ts";
import type { CoordinationStore, Lease } from "../store/index.ts";
import { assert } from "../util/assert.ts";
import {
  clusterKeys,
  encodeRecord,
  filesystemRecordSchema,
  type RunningRecord,
  runningRecordSchema,
  type VserverRecord,
} from "./catalog.ts";
import { ClusterView } from "./cluster-view.ts";
import { HANDOVER_WAIT_MS_DEFAULT, type HolderClaim, releaseHolder, takeHolder } from "./handover.ts";

export interface NodeAgentOptions {
  readonly store: CoordinationStore;
  readonly nodeId: string;
  readonly servers: StorageClientSource;
  /** The node's membership lease while held; the agent serves nothing without it. */
  readonly lease: () => Lease | undefined;
  readonly logger: Logger;
  /** How long a write keeps retrying an unreachable storage replica before it fails. */
  readonly stallMaxMs?: number;
  /** How long to wait between attempts to bind a VIP still held by a previous owner. */
  readonly bindRetryMs?: number;
  readonly cacheBytes?: number;
  /** How long a start waits for a live previous holder to hand over before fencing it (forced). */
  readonly handoverWaitMs?: number;
}

/** A vserver this node serves (or is starting or stopping). */
interface Served {
  readonly spec: VserverRecord;
  readonly generation: number;
  runtime: VserverRuntime | undefined;
  devices: RemoteBlockDevice[];
  fenced: boolean;
  /** This node's hold on the vserver's volumes, from before it fenced anyone until it let go. */
  holder: HolderClaim | undefined;
}

const BIND_RETRY_MS_DEFAULT = 250;
const STALL_MAX_MS_DEFAULT = 30_000;
const RETRY_MS_MIN = 500;
const RETRY_MS_MAX = 10_000;

export class NodeAgent implements AsyncDisposable {
  private view: ClusterView | undefined;
  private readonly served = new Map<string, Served>();
  private readonly tasks = new Map<string, Promise<void>>();
  /** Generations this node was fenced at: never started again (a newer owner holds the volume). */
  private readonly fencedAt = new Map<string, number>();
  /** Tasks that failed in a row, per vserver, and when to try again. */
  private readonly failures = new Map<string, { count: number; untilMs: number }>();
  private closed = false;
  /** Starts waiting for a handover, woken by every change the view hears of. */
  private readonly changeWaiters = new Set<() => void>();
  private readonly options: NodeAgentOptions;
  private readonly log: Logger;

  private constructor(options: NodeAgentOptions) {
    this.options = options;
    this.log = options.logger.child({ component: "agent", nodeId: options.nodeId });
  }

  static async start(options: NodeAgentOptions): Promise<NodeAgent> {
    const agent = new NodeAgent(options);
    agent.view = await ClusterView.follow(options.store, agent.log, () => {
      for (const wake of [...agent.changeWaiters]) wake();
      agent.reconcile();
    });
    agent.reconcile();
    return agent;
  }

  /** Looks at every vserver and starts the tasks that bring it where it should be. */
  reconcile(): void {
    if (this.closed || this.view === undefined) return;
    const ids = new Set([...this.view.current.vservers.keys(), ...this.served.keys()]);
    for (const id of ids) {
      if (this.tasks.has(id)) continue;
      const task = this.step(id);
      if (task === undefined) continue;
      this.tasks.set(
        id,
        task
          .catch((error: unknown) => this.backOff(id, error))
          .finally(() => {
            this.tasks.delete(id);
            this.reconcile();
          }),
      );
    }
  }

  /** Resolves at the next change of the cluster view, or after `ms`. */
  private nextChange(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.changeWaiters.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      timer.unref();
      this.changeWaiters.add(wake);
    });
  }

  /** A failed task is tried again after a growing delay, so a persistent fault does not spin. */
  private backOff(id: string, error: unknown): void {
    const failures = (this.failures.get(id)?.count ?? 0) + 1;
    const delayMs = Math.min(RETRY_MS_MAX, RETRY_MS_MIN * 2 ** Math.min(failures - 1, 10));
    this.failures.set(id, { count: failures, untilMs: performance.now() + delayMs });
    this.log.error({ err: error, vserverId: id, failures, retryInMs: delayMs }, "vserver task failed");
    setTimeout(() => this.reconcile(), delayMs).unref();
  }

  /** The desired generation of a vserver on this node, or undefined if it should not run here. */
  private wanted(id: string): { spec: VserverRecord; generation: number } | undefined {
    const snapshot = this.view?.current;
    if (snapshot === undefined || this.options.lease() === undefined) return undefined;
    const spec = snapshot.vservers.get(id)?.record;
    const placement = snapshot.placements.get(id)?.record;
    if (spec === undefined || placement === undefined || placement.node !== this.options.nodeId)
      return undefined;
    if (this.fencedAt.get(id) === placement.generation) return undefined;
    return { spec, generation: placement.generation };
  }

  /** The next task for one vserver, if any. */
  private step(id: string): Promise<void> | undefined {
    const want = this.wanted(id);
    const have = this.served.get(id);
    if (have !== undefined) {
      const same =
        want !== undefined &&
        want.generation === have.generation &&
        sameSpec(want.spec, have.spec) &&
        !have.fenced;
      return same ? undefined : this.stop(id, have);
    }
    if (want === undefined) return undefined;
    const failed = this.failures.get(id);
    if (failed !== undefined && performance.now() < failed.untilMs) return undefined;
    return this.start(id, want.spec, want.generation);
  }

  private stillWanted(id: string, generation: number): boolean {
    return !this.closed && this.wanted(id)?.generation === generation;
  }

  private async start(id: string, spec: VserverRecord, generation: number): Promise<void> {
    const served: Served = {
      spec,
      generation,
      runtime: undefined,
      devices: [],
      fenced: false,
      holder: undefined,
    };
    this.served.set(id, served);
    try {
      await this.bringUp(id, served);
    } catch (error) {
      this.served.delete(id);
      await served.runtime?.abort();
      await Promise.allSettled(served.devices.map((d) => d.close()));
      await this.letGo(id, served);
      throw error;
    }
  }

  private async bringUp(id: string, served: Served): Promise<void> {
    const { spec, generation } = served;
    const log = this.log.child({ vserverId: id, generation });
    const { store, nodeId } = this.options;
    log.info("starting vserver");
    const startedAt = performance.now();
    const holdingLease = this.options.lease();
    if (holdingLease === undefined) return;
    served.holder = await takeHolder({
      store,
      nodeId,
      vserverId: id,
      generation,
      leaseId: holdingLease.id,
      waitMs: this.options.handoverWaitMs ?? HANDOVER_WAIT_MS_DEFAULT,
      log,
      nextChange: (ms) => this.nextChange(ms),
      stillWanted: () => this.stillWanted(id, generation),
    });
    if (served.holder === undefined) return;
    const ownerEpochs: Record<string, number> = {};
    for (const volumeId of spec.volumes) {
      if (!this.stillWanted(id, generation)) return;
      const lease = this.options.lease();
      const { device, epoch } = await RemoteBlockDevice.takeOver({
        store,
        servers: this.options.servers,
        volumeId,
        filerId: nodeId,
        ...(lease === undefined ? {} : { lease }),
        stallMaxMs: this.options.stallMaxMs ?? STALL_MAX_MS_DEFAULT,
        logger: log,
        onFenced: (error) => this.onFenced(id, served, error),
      });
      ownerEpochs[volumeId] = epoch;
      served.devices.push(device);
    }
    const device = served.devices[0];
    assert(
      device !== undefined && served.devices.length === spec.volumes.length,
      "a vserver has its volumes",
    );
    for (const [i, volumeId] of spec.volumes.entries())
      await this.ensureFileSystem(volumeId, served.devices[i]!, log);
    // The first volume is the export "/", each further one "/VOLUME-ID"; handle volume ids count from 1.
    const more = served.devices
      .slice(1)
      .map((d, i) => ({ name: spec.volumes[i + 1]!, volumeId: i + 2, device: d }));
    const exports = spec.exports.map((text) => parseExportRule(text));
    let attempts = 0;
    while (served.runtime === undefined) {
      if (!this.stillWanted(id, generation) || served.fenced) return;
      try {
        served.runtime = await VserverRuntime.start({
          vserverId: spec.handleId,
          volumeId: 1,
          handleKey: new Uint8Array(Buffer.from(spec.handleKey, "base64")),
          device,
          more,
          format: false,
          vips: spec.vips,
          nfsPort: spec.nfsPort,
          mountPort: spec.mountPort,
          exports,
          logger: log,
          ...(this.options.cacheBytes === undefined ? {} : { cacheBytes: this.options.cacheBytes }),
        });
      } catch (error) {
        // A VIP still held by a previous owner that has not yet stopped (it will, once it sees it
        // has lost its lease): wait for it, as a real VIP waits for the old holder's ARP to age out.
        if (!isAddressInUse(error)) throw error;
        if (attempts++ % 20 === 0)
          log.warn({ err: error, attempts }, "a VIP is still held elsewhere; retrying");
        await new Promise((resolve) =>
          setTimeout(resolve, this.options.bindRetryMs ?? BIND_RETRY_MS_DEFAULT),
        );
      }
    }
    const runtime = served.runtime;
    if (served.fenced) return;
    const record: RunningRecord = {
      nodeId,
      generation,
      endpoints: runtime.endpoints.map((e) => ({ ...e })),
      ownerEpochs,
      sinceMs: Date.now(),
    };
    const lease = this.options.lease();
    if (lease !== undefined) {
      await store
        .put(clusterKeys.running(id), encodeRecord(runningRecordSchema, record), { lease: lease.id })
        .catch((error: unknown) => log.warn({ err: error }, "could not publish the running record"));
    }
    log.info(
      {
        ms: Math.round(performance.now() - startedAt),
        urls: runtime.endpoints.map((e) => e.url),
        handoverFrom: served.holder.from ?? null,
        handoverWaitMs: served.holder.waitedMs,
        forced: served.holder.forced,
      },
      "vserver started",
    );
    this.failures.delete(id);
  }

  /** A file system is made once per volume, and recorded before anyone can write to it. */
  private async ensureFileSystem(volumeId: string, device: RemoteBlockDevice, log: Logger): Promise<void> {
    const key = clusterKeys.filesystem(volumeId);
    if ((await this.options.store.get(key)) !== undefined) return;
    await mkfs(device);
    await this.options.store.put(
      key,
      encodeRecord(filesystemRecordSchema, { madeAtMs: Date.now(), madeBy: this.options.nodeId }),
    );
    log.info({ volumeId }, "made a file system on a new volume");
  }

  private onFenced(id: string, served: Served, error: BlockDeviceError): void {
    if (served.fenced) return;
    served.fenced = true;
    this.fencedAt.set(id, served.generation);
    this.log.error({ vserverId: id, err: error }, "fenced by a newer owner: stopping this vserver at once");
    void served.runtime?.abort();
    this.reconcile();
  }

  private async stop(id: string, served: Served): Promise<void> {
    const log = this.log.child({ vserverId: id, generation: served.generation });
    log.info({ fenced: served.fenced }, "stopping vserver");
    const startedAt = performance.now();
    let clean = false;
    try {
      if (served.fenced || this.options.lease() === undefined) {
        // Not ours to write any more: drop everything unflushed.
        await served.runtime?.abort();
        await Promise.allSettled(served.devices.map((d) => d.abandon()));
      } else {
        // Listeners closed, calls in flight finished, committed, unmounted: then the devices flushed.
        await served.runtime?.stop();
        const closed = await Promise.allSettled(served.devices.map((d) => d.close()));
        clean = closed.every((c) => c.status === "fulfilled");
      }
    } finally {
      this.served.delete(id);
      await this.withdrawRunning(id, served.generation);
      const released = await this.letGo(id, served);
      if (clean && released)
        log.info(
          { ms: Math.round(performance.now() - startedAt) },
          "handed over: calls finished, committed, unmounted, released",
        );
    }
    log.info("vserver stopped");
  }

  /** Deletes this node's holder key, if it still is this node's: the next owner may start. */
  private async letGo(id: string, served: Served): Promise<boolean> {
    const claim = served.holder;
    if (claim === undefined) return false;
    served.holder = undefined;
    try {
      return await releaseHolder(this.options.store, claim);
    } catch (error) {
      // The key stays until the lease goes: the next owner waits for that, or for its bounded wait.
      this.log.warn({ err: error, vserverId: id }, "could not release the holder key");
      return false;
    }
  }

  private async withdrawRunning(id: string, generation: number): Promise<void> {
    const key = clusterKeys.running(id);
    const running = this.view?.current.running.get(id);
    if (running === undefined || running.nodeId !== this.options.nodeId || running.generation !== generation)
      return;
    const kv = await this.options.store.get(key).catch(() => undefined);
    if (kv === undefined) return;
    await this.options.store
      .txn([{ key, target: "mod", equals: kv.modRevision }], [{ op: "delete", key }])
      .catch((error: unknown) => this.log.warn({ err: error }, "could not withdraw a running record"));
  }

  /** The lease is gone: stop serving everything at once, flushing nothing. */
  async suspend(): Promise<void> {
    const all = [...this.served.values()];
    await Promise.allSettled(all.map((s) => s.runtime?.abort()));
    this.reconcile();
  }

  /** A crash: every listener cut, nothing flushed or released, nothing followed any more. */
  async kill(): Promise<void> {
    this.closed = true;
    const all = [...this.served.values()];
    await Promise.allSettled(all.map((s) => s.runtime?.abort()));
    await Promise.allSettled(all.flatMap((s) => s.devices.map((d) => d.abandon())));
    await this.view?.close();
  }

  /** Stops every vserver cleanly (committed and unmounted) and stops following. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.tasks.values()]);
    await Promise.allSettled([...this.served.entries()].map(([id, served]) => this.stop(id, served)));
    await this.view?.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

function sameSpec(a: VserverRecord, b: VserverRecord): boolean {
  return (
    a.handleKey === b.handleKey &&
    a.nfsPort === b.nfsPort &&
    a.mountPort === b.mountPort &&
    a.vips.join() === b.vips.join() &&
    a.volumes.join() === b.volumes.join() &&
    a.exports.join("\n") === b.exports.join("\n")
  );
}

function isAddressInUse(error: unknown): boolean {
  return error instanceof Error && "code" in error && error.code === "EADDRINUSE";
}
