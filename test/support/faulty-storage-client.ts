/**
 * Wraps a real StorageClient and injects faults into chosen calls: fail them, or hold them until
 * released. The calls that pass go to the real server.
 */
import {
  type ChunkRef,
  type ServerStats,
  type StorageClient,
  StorageError,
  type StorageErrorCode,
} from "../../src/storage/types.ts";

export type CallName = Exclude<keyof StorageClient, "serverId" | typeof Symbol.asyncDispose>;

export interface Fault {
  /** Which calls it applies to. */
  readonly calls: readonly CallName[];
  /** Fails the call with this code before it reaches the server. */
  readonly fail?: StorageErrorCode;
  /** Holds the call until this promise settles, then sends it. */
  readonly holdUntil?: Promise<void>;
  /** Applies to this many calls, then stops (default: until removed). */
  times?: number;
}

export class FaultyStorageClient implements StorageClient {
  readonly serverId: string;
  private readonly faults = new Set<Fault>();
  /** Calls that met a fault, by name. */
  readonly hits = new Map<CallName, number>();
  private readonly inner: StorageClient;

  constructor(inner: StorageClient) {
    this.inner = inner;
    this.serverId = inner.serverId;
  }

  inject(fault: Fault): Disposable {
    this.faults.add(fault);
    return { [Symbol.dispose]: () => this.faults.delete(fault) };
  }

  clear(): void {
    this.faults.clear();
  }

  private async gate(name: CallName): Promise<void> {
    for (const fault of this.faults) {
      if (!fault.calls.includes(name)) continue;
      if (fault.times !== undefined) {
        if (fault.times <= 0) continue;
        fault.times--;
      }
      this.hits.set(name, (this.hits.get(name) ?? 0) + 1);
      if (fault.holdUntil !== undefined) await fault.holdUntil;
      if (fault.fail !== undefined) throw new StorageError(fault.fail, `injected ${fault.fail} on ${name}`);
    }
  }

  async createChunk(chunk: ChunkRef, ownerEpoch: number): Promise<void> {
    await this.gate("createChunk");
    return this.inner.createChunk(chunk, ownerEpoch);
  }
  async read(
    chunk: ChunkRef,
    ownerEpoch: number,
    blockOffset: number,
    blockCount: number,
  ): Promise<Uint8Array> {
    await this.gate("read");
    return this.inner.read(chunk, ownerEpoch, blockOffset, blockCount);
  }
  async write(chunk: ChunkRef, ownerEpoch: number, blockOffset: number, data: Uint8Array): Promise<void> {
    await this.gate("write");
    return this.inner.write(chunk, ownerEpoch, blockOffset, data);
  }
  async flush(volumeId: string, ownerEpoch: number): Promise<void> {
    await this.gate("flush");
    return this.inner.flush(volumeId, ownerEpoch);
  }
  async fence(volumeId: string, ownerEpoch: number): Promise<void> {
    await this.gate("fence");
    return this.inner.fence(volumeId, ownerEpoch);
  }
  async ownerEpoch(volumeId: string): Promise<number> {
    await this.gate("ownerEpoch");
    return this.inner.ownerEpoch(volumeId);
  }
  async beginFill(chunk: ChunkRef, generation: number): Promise<void> {
    await this.gate("beginFill");
    return this.inner.beginFill(chunk, generation);
  }
  async copyFrom(
    chunk: ChunkRef,
    generation: number,
    sourceServerId: string,
    blockOffset: number,
    blockCount: number,
  ): Promise<number> {
    await this.gate("copyFrom");
    return this.inner.copyFrom(chunk, generation, sourceServerId, blockOffset, blockCount);
  }
  async endFill(chunk: ChunkRef, generation: number): Promise<void> {
    await this.gate("endFill");
    return this.inner.endFill(chunk, generation);
  }
  async checksums(chunk: ChunkRef, blockCount: number): Promise<Uint32Array> {
    await this.gate("checksums");
    return this.inner.checksums(chunk, blockCount);
  }
  async dropChunk(chunk: ChunkRef): Promise<void> {
    await this.gate("dropChunk");
    return this.inner.dropChunk(chunk);
  }
  async stats(): Promise<ServerStats> {
    await this.gate("stats");
    return this.inner.stats();
  }
  async [Symbol.asyncDispose](): Promise<void> {
    await this.inner[Symbol.asyncDispose]();
  }
}
