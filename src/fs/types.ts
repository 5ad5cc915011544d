/** The volume file system's public API: the one interface the NFS layer calls. */

export type FileType = "reg" | "dir" | "lnk" | "chr" | "blk" | "sock" | "fifo";

/** Who is asking. uid 0 is root. `gids` are the supplementary groups. */
export interface Credentials {
  readonly uid: number;
  readonly gid: number;
  readonly gids: readonly number[];
}

/** Identifies an object for as long as it exists: an inode number is never reused, and `gen` tells incarnations apart. */
export interface NodeRef {
  readonly ino: number;
  readonly gen: number;
}

export interface Timespec {
  readonly sec: number;
  readonly nsec: number;
}

export interface DeviceNumbers {
  readonly major: number;
  readonly minor: number;
}

export interface Attr {
  readonly type: FileType;
  /** Permission bits and setuid/setgid/sticky (07777). */
  readonly mode: number;
  readonly nlink: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  /** Bytes of device space the object's data occupies. */
  readonly usedBytes: number;
  readonly rdev: DeviceNumbers;
  /** The inode number, as NFS `fileid`. */
  readonly fileid: number;
  readonly gen: number;
  readonly atime: Timespec;
  readonly mtime: Timespec;
  readonly ctime: Timespec;
  /** Bumped on every change to the object (data or attributes): NFS change detection. */
  readonly change: number;
}

/** The pre-operation attributes NFS weak cache consistency reports. */
export interface WccAttr {
  readonly size: number;
  readonly mtime: Timespec;
  readonly ctime: Timespec;
}

export interface Wcc {
  readonly before: WccAttr;
  readonly after: Attr;
}

/** `"server"` means the server's current time (NFS SET_TO_SERVER_TIME). */
export type TimeSetting = Timespec | "server";

export interface SetAttrRequest {
  readonly mode?: number;
  readonly uid?: number;
  readonly gid?: number;
  readonly size?: number;
  readonly atime?: TimeSetting;
  readonly mtime?: TimeSetting;
}

/** Attributes a new object starts with; unspecified ones come from the caller and defaults. */
export interface CreateAttrs {
  readonly mode?: number;
  readonly uid?: number;
  readonly gid?: number;
  readonly size?: number;
  readonly atime?: TimeSetting;
  readonly mtime?: TimeSetting;
}

export type CreateHow =
  | { readonly kind: "unchecked"; readonly attrs: CreateAttrs }
  | { readonly kind: "guarded"; readonly attrs: CreateAttrs }
  /** A retried exclusive create with the same 8-byte verifier finds the file it made and succeeds. */
  | { readonly kind: "exclusive"; readonly verifier: Uint8Array };

export type Stability = "unstable" | "data-sync" | "file-sync";

export type SpecialType = "chr" | "blk" | "sock" | "fifo";

/** Bits of the NFS ACCESS request. */
export const ACCESS = {
  READ: 0x01,
  LOOKUP: 0x02,
  MODIFY: 0x04,
  EXTEND: 0x08,
  DELETE: 0x10,
  EXECUTE: 0x20,
} as const;

export interface LookupResult {
  readonly ref: NodeRef;
  readonly attr: Attr;
  readonly dirAttr: Attr;
}

export interface CreateResult {
  readonly ref: NodeRef;
  readonly attr: Attr;
  readonly dir: Wcc;
}

export interface ReadResult {
  readonly data: Uint8Array;
  readonly eof: boolean;
  readonly attr: Attr;
  /**
   * When present, `data` is a view of a reused buffer: call this once nothing uses it any more (after
   * the reply carrying it is sent), at most once. Not calling it only costs a fresh allocation later.
   */
  readonly release?: () => void;
}

export interface WriteResult {
  readonly count: number;
  /** The stability actually reached: at least what was asked. */
  readonly committed: Stability;
  readonly wcc: Wcc;
  /**
   * True when nothing in the volume or its device refers to the caller's `data` any more (it was
   * copied, or written and the device keeps no reference): the caller may reuse that buffer.
   */
  readonly dataReleased?: boolean;
}

export interface DirEntry {
  readonly name: string;
  readonly fileid: number;
  /** Resume after this entry by passing it back as `cookie`. Never 0. */
  readonly cookie: number;
  readonly ref: NodeRef;
  readonly type: FileType;
}

export interface ReadDirResult {
  readonly entries: readonly DirEntry[];
  /** Pass back with the next cookie; a verifier that no longer matches gets BAD_COOKIE. */
  readonly verifier: bigint;
  readonly eof: boolean;
  readonly dirAttr: Attr;
}

export interface RenameResult {
  readonly from: Wcc;
  readonly to: Wcc;
}

export interface FsStat {
  readonly totalBytes: number;
  readonly freeBytes: number;
  /** Free bytes a non-root caller may use (the same here: there is no root reserve). */
  readonly availBytes: number;
  readonly totalFiles: number;
  readonly freeFiles: number;
  readonly availFiles: number;
}

/**
 * A mounted volume. Every method is async and fails only with FsError; names are strings of
 * 1..255 UTF-8 bytes. Operations on a stale or deleted NodeRef fail with STALE.
 */
export interface Volume {
  readonly rootRef: NodeRef;
  getattr(ref: NodeRef): Promise<Attr>;
  /** `guardCtime`: fail with NOT_SYNC unless the object's ctime equals it (NFS sattrguard3). */
  setattr(cred: Credentials, ref: NodeRef, request: SetAttrRequest, guardCtime?: Timespec): Promise<Wcc>;
  lookup(cred: Credentials, dir: NodeRef, name: string): Promise<LookupResult>;
  /** Returns the subset of the ACCESS bits in `mask` that `cred` is granted. */
  access(cred: Credentials, ref: NodeRef, mask: number): Promise<{ granted: number; attr: Attr }>;
  read(cred: Credentials, ref: NodeRef, offset: number, count: number): Promise<ReadResult>;
  write(
    cred: Credentials,
    ref: NodeRef,
    offset: number,
    data: Uint8Array,
    stability: Stability,
  ): Promise<WriteResult>;
  create(cred: Credentials, dir: NodeRef, name: string, how: CreateHow): Promise<CreateResult>;
  mkdir(cred: Credentials, dir: NodeRef, name: string, attrs: CreateAttrs): Promise<CreateResult>;
  symlink(
    cred: Credentials,
    dir: NodeRef,
    name: string,
    target: string,
    attrs: CreateAttrs,
  ): Promise<CreateResult>;
  readlink(cred: Credentials, ref: NodeRef): Promise<{ target: string; attr: Attr }>;
  mknod(
    cred: Credentials,
    dir: NodeRef,
    name: string,
    type: SpecialType,
    attrs: CreateAttrs,
    rdev?: DeviceNumbers,
  ): Promise<CreateResult>;
  remove(cred: Credentials, dir: NodeRef, name: string): Promise<Wcc>;
  rmdir(cred: Credentials, dir: NodeRef, name: string): Promise<Wcc>;
  rename(
    cred: Credentials,
    fromDir: NodeRef,
    fromName: string,
    toDir: NodeRef,
    toName: string,
  ): Promise<RenameResult>;
  link(cred: Credentials, target: NodeRef, dir: NodeRef, name: string): Promise<{ attr: Attr; dir: Wcc }>;
  /** Entries after `cookie` (0 = from the start), at most `maxEntries`; "." and ".." are not listed. */
  readdir(
    cred: Credentials,
    dir: NodeRef,
    cookie: number,
    verifier: bigint,
    maxEntries: number,
  ): Promise<ReadDirResult>;
  fsstat(): Promise<FsStat>;
  /**
   * Makes every operation that completed before this call durable. Calls that arrive while a commit
   * waits to begin share it (a group commit), so many replies pay for one flush.
   */
  commit(): Promise<void>;
  /**
   * Makes every namespace and attribute change (all but unstable file data) that completed before
   * this call durable, through the intent log: cheaper than a commit, which rewrites the tree.
   */
  sync(): Promise<void>;
  /** Commits and releases the device. The volume is unusable afterwards. */
  unmount(): Promise<void>;
}
