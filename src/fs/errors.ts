/**
 * File-system error codes. Each maps one-to-one to an NFS3ERR_* status (RFC 1813 section 2.6);
 * the NFS layer takes the wire value from NFS3_STATUS, never from message text.
 */
export const NFS3_STATUS = {
  PERM: 1,
  NOENT: 2,
  IO: 5,
  NXIO: 6,
  ACCES: 13,
  EXIST: 17,
  XDEV: 18,
  NODEV: 19,
  NOTDIR: 20,
  ISDIR: 21,
  INVAL: 22,
  FBIG: 27,
  NOSPC: 28,
  ROFS: 30,
  MLINK: 31,
  NAMETOOLONG: 63,
  NOTEMPTY: 66,
  DQUOT: 69,
  STALE: 70,
  REMOTE: 71,
  BADHANDLE: 10001,
  NOT_SYNC: 10002,
  BAD_COOKIE: 10003,
  NOTSUPP: 10004,
  TOOSMALL: 10005,
  SERVERFAULT: 10006,
  BADTYPE: 10007,
  JUKEBOX: 10008,
} as const;

export type FsErrorCode = keyof typeof NFS3_STATUS;

/** An expected failure of a file-system operation, with a code the NFS layer returns as-is. */
export class FsError extends Error {
  override name = "FsError";
  readonly code: FsErrorCode;
  /** The device block concerned, for IO errors that come from a damaged or unreadable block. */
  readonly blockIndex: number | undefined;
  constructor(code: FsErrorCode, message: string, options?: { blockIndex?: number; cause?: unknown }) {
    super(`${code}: ${message}`, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.blockIndex = options?.blockIndex;
  }
}

export function isFsError(error: unknown, code?: FsErrorCode): error is FsError {
  return error instanceof FsError && (code === undefined || error.code === code);
}
