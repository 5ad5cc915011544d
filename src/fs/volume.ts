import type { BlockDevice } from "../block/index.ts";
import type { MkfsOptions, MountOptions } from "./api.ts";
import type { Volume } from "./types.ts";

/** The device does not hold a Flotilla volume (no valid superblock). */
export class NotAVolumeError extends Error {
  override name = "NotAVolumeError";
}

/** Writes an empty file system (a root directory) onto the device. */
export async function mkfs(_device: BlockDevice, _options?: MkfsOptions): Promise<void> {
  throw new Error("mkfs: not implemented yet");
}

/** Mounts the newest valid transaction group on the device. */
export async function mount(_device: BlockDevice, _options?: MountOptions): Promise<Volume> {
  throw new Error("mount: not implemented yet");
}
