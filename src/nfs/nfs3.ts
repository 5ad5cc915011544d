/** NFS version 3 constants (RFC 1813). */

export const NFS_PROGRAM = 100003;
export const NFS_VERSION = 3;

export const NfsProc = {
  NULL: 0,
  GETATTR: 1,
  SETATTR: 2,
  LOOKUP: 3,
  ACCESS: 4,
  READLINK: 5,
  READ: 6,
  WRITE: 7,
  CREATE: 8,
  MKDIR: 9,
  SYMLINK: 10,
  MKNOD: 11,
  REMOVE: 12,
  RMDIR: 13,
  RENAME: 14,
  LINK: 15,
  READDIR: 16,
  READDIRPLUS: 17,
  FSSTAT: 18,
  FSINFO: 19,
  PATHCONF: 20,
  COMMIT: 21,
} as const;
export type NfsProcName = keyof typeof NfsProc;

export const Ftype3 = { REG: 1, DIR: 2, BLK: 3, CHR: 4, LNK: 5, SOCK: 6, FIFO: 7 } as const;
export const StableHow = { UNSTABLE: 0, DATA_SYNC: 1, FILE_SYNC: 2 } as const;
export const TimeHow = { DONT_CHANGE: 0, SET_TO_SERVER_TIME: 1, SET_TO_CLIENT_TIME: 2 } as const;
export const CreateMode = { UNCHECKED: 0, GUARDED: 1, EXCLUSIVE: 2 } as const;

export const NFS3_OK = 0;
/** nfs_fh3 is at most 64 bytes. */
export const NFS3_FHSIZE = 64;
export const NFS3_COOKIEVERFSIZE = 8;
export const NFS3_CREATEVERFSIZE = 8;
export const NFS3_WRITEVERFSIZE = 8;
/** Names longer than 255 bytes are decoded and refused by the file system with NAMETOOLONG. */
export const NAME_WIRE_BYTES_MAX = 1024;
export const PATH_WIRE_BYTES_MAX = 4096;
/** What FSINFO advertises and READ/WRITE honour. */
export const TRANSFER_BYTES_MAX = 1024 * 1024;
export const TRANSFER_BYTES_PREF = 1024 * 1024;
export const DIR_BYTES_PREF = 64 * 1024;

export const FSF3_LINK = 0x0001;
export const FSF3_SYMLINK = 0x0002;
export const FSF3_HOMOGENEOUS = 0x0008;
export const FSF3_CANSETTIME = 0x0010;
