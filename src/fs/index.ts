export type { FsckOptions, FsckProblem, FsckReport, MkfsOptions, MountOptions } from "./api.ts";
export { fsckExitCode } from "./api.ts";
export { FsError, type FsErrorCode, isFsError, NFS3_STATUS } from "./errors.ts";
export { fsck, listUsedBlocks } from "./fsck.ts";
export { FILE_BYTES_MAX, NAME_BYTES_MAX, NLINK_MAX, SYMLINK_TARGET_BYTES_MAX } from "./layout.ts";
export type * from "./types.ts";
export { ACCESS } from "./types.ts";
export { engineOf, mkfs, mount, NotAVolumeError } from "./volume.ts";
