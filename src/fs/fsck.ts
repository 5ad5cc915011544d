import type { BlockDevice } from "../block/index.ts";
import type { FsckOptions, FsckReport } from "./api.ts";

/** Walks the whole volume, checking every checksum and invariant; repairs what it can when asked. */
export async function fsck(_device: BlockDevice, _options: FsckOptions): Promise<FsckReport> {
  throw new Error("fsck: not implemented yet");
}
