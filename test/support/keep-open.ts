import type { BlockDevice } from "../../src/block/index.ts";

/**
 * The device seen through a view whose `close` does nothing, so that a test can unmount a volume
 * (which closes its device) and mount the same device again.
 */
export function keepOpen(device: BlockDevice): BlockDevice {
  return {
    blockCount: device.blockCount,
    holdsWritesBack: device.holdsWritesBack,
    read: (blockIndex, blockCount) => device.read(blockIndex, blockCount),
    write: (blockIndex, data) => device.write(blockIndex, data),
    flush: () => device.flush(),
    close: async () => {},
  };
}
