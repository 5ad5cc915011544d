import type { BlockDevice } from "../../src/block/index.ts";

/** Passes calls through and counts the blocks read, to assert how much work an operation does. */
export class CountingDevice implements BlockDevice {
  readonly inner: BlockDevice;
  blocksRead = 0;
  readCalls = 0;
  constructor(inner: BlockDevice) {
    this.inner = inner;
  }
  get blockCount(): number {
    return this.inner.blockCount;
  }
  get holdsWritesBack(): boolean {
    return this.inner.holdsWritesBack;
  }
  read(blockIndex: number, blockCount: number): Promise<Uint8Array> {
    this.readCalls++;
    this.blocksRead += blockCount;
    return this.inner.read(blockIndex, blockCount);
  }
  write(blockIndex: number, data: Uint8Array): Promise<void> {
    return this.inner.write(blockIndex, data);
  }
  flush(): Promise<void> {
    return this.inner.flush();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}
