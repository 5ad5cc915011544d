/**
 * A verifying write load on a block device: several writers, each owning its own stripe of blocks, write
 * runs at random offsets one at a time and remember what each block should hold once acknowledged.
 * `verify` reads everything back; `replicasAgree` compares every replica of every chunk.
 */
import assert from "node:assert/strict";
import { BLOCK_BYTES, type BlockDevice } from "../../src/block/index.ts";
import type { RemoteBlockDevice } from "../../src/block/remote-device.ts";
import type { StorageClientSource } from "../../src/storage/server-registry.ts";
import { SeededRandom } from "../../src/util/random.ts";

export interface WriteLoadOptions {
  readonly writers?: number;
  /** Blocks the load may touch, from block 0. */
  readonly blockSpan: number;
  readonly runBlocksMax?: number;
  readonly seed?: number;
  /** Flush after this many writes of one writer. */
  readonly flushEvery?: number;
}

export class WriteLoad {
  /** For each block written and acknowledged: the stamp of the write it must hold. */
  private readonly expected = new Map<number, number>();
  private stopping = false;
  private running: Promise<void> | undefined;
  writes = 0;
  flushes = 0;
  /** Every error a write or flush returned: the tests require there are none. */
  readonly errors: unknown[] = [];
  private readonly device: BlockDevice;
  private readonly options: WriteLoadOptions;

  constructor(device: BlockDevice, options: WriteLoadOptions) {
    this.device = device;
    this.options = options;
  }

  start(): void {
    const writers = this.options.writers ?? 4;
    this.running = Promise.all(Array.from({ length: writers }, (_, w) => this.writer(w, writers))).then(
      () => undefined,
    );
  }

  /** Stops after the writes in flight; resolves once every writer has finished. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.running;
    await this.device.flush();
  }

  /** Runs until `writes` more writes have been acknowledged. */
  async until(writes: number): Promise<void> {
    const target = this.writes + writes;
    while (this.writes < target) {
      if (this.errors.length > 0) throw this.errors[0];
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  private async writer(index: number, writers: number): Promise<void> {
    const random = new SeededRandom((this.options.seed ?? 1) * 1000 + index);
    const runMax = this.options.runBlocksMax ?? 16;
    // Stripes of 32 blocks dealt round robin: writers never touch each other's blocks.
    const stripe = 32;
    const stripes = Math.floor(this.options.blockSpan / stripe / writers);
    assert.ok(stripes > 0, "the span is too small for this many writers");
    let count = 0;
    while (!this.stopping) {
      const s = random.int(stripes) * writers + index;
      const offset = random.int(stripe);
      const blocks = 1 + random.int(Math.min(runMax, stripe - offset) - 1 + 1);
      const first = s * stripe + offset;
      const stamp = ++count * 64 + index;
      const data = new Uint8Array(blocks * BLOCK_BYTES);
      for (let b = 0; b < blocks; b++)
        fillBlock(data.subarray(b * BLOCK_BYTES, (b + 1) * BLOCK_BYTES), first + b, stamp);
      try {
        await this.device.write(first, data);
        for (let b = 0; b < blocks; b++) this.expected.set(first + b, stamp);
        this.writes++;
        if (count % (this.options.flushEvery ?? 20) === 0) {
          await this.device.flush();
          this.flushes++;
        }
      } catch (error) {
        this.errors.push(error);
        return;
      }
    }
  }

  /** Every acknowledged write reads back as written; resolves with the number of blocks checked. */
  async verify(device: BlockDevice = this.device): Promise<number> {
    const step = 256;
    let checked = 0;
    for (let first = 0; first < this.options.blockSpan; first += step) {
      const count = Math.min(step, this.options.blockSpan - first);
      const data = await device.read(first, count);
      for (let b = 0; b < count; b++) {
        const stamp = this.expected.get(first + b);
        if (stamp === undefined) continue;
        const got = data.subarray(b * BLOCK_BYTES, (b + 1) * BLOCK_BYTES);
        const want = new Uint8Array(BLOCK_BYTES);
        fillBlock(want, first + b, stamp);
        if (Buffer.compare(got, want) !== 0) {
          assert.fail(
            `block ${first + b}: holds ${describe(got)}; the acknowledged write was stamp ${stamp}`,
          );
        }
        checked++;
      }
    }
    return checked;
  }
}

/** Every replica of every chunk holds the same blocks (compared by their checksums). */
export async function replicasAgree(device: RemoteBlockDevice, servers: StorageClientSource): Promise<void> {
  const { volumeId, chunkBlocks, blockCount } = device.volume;
  for (let chunkIndex = 0; chunkIndex < Math.ceil(blockCount / chunkBlocks); chunkIndex++) {
    const route = device.routeOf(chunkIndex);
    assert.ok(
      route.replicas.every((r) => r.state === "active"),
      `chunk ${chunkIndex} still has a filling replica`,
    );
    const sums = await Promise.all(
      route.replicas.map((r) => {
        const client = servers.clientFor(r.serverId);
        assert.ok(client !== undefined, `replica ${r.serverId} is not registered`);
        return client.checksums({ volumeId, chunkIndex }, chunkBlocks);
      }),
    );
    for (let i = 1; i < sums.length; i++) {
      const a = sums[0]!;
      const b = sums[i]!;
      const bad = a.findIndex((v, k) => v !== b[k]);
      assert.equal(
        bad,
        -1,
        `chunk ${chunkIndex}: ${route.replicas[0]!.serverId} and ${route.replicas[i]!.serverId} differ at block ${bad}`,
      );
    }
  }
}

function fillBlock(block: Uint8Array, blockIndex: number, stamp: number): void {
  const view = new DataView(block.buffer, block.byteOffset, block.byteLength);
  for (let i = 0; i < BLOCK_BYTES; i += 8) {
    view.setUint32(i, blockIndex, true);
    view.setUint32(i + 4, stamp, true);
  }
}

function describe(data: Uint8Array): string {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  return `block ${view.getUint32(0, true)} stamp ${view.getUint32(4, true)}`;
}
