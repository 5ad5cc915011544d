import type { BlockDevice } from "../block/index.ts";
import { BLOCK_BYTES } from "../block/index.ts";
import { assert, assertionFailed } from "../util/assert.ts";
import { type Clock, systemClock } from "../util/clock.ts";
import { RwLock } from "../util/rw-lock.ts";
import type { MkfsOptions, MountOptions } from "./api.ts";
import { utf8 } from "./bytes.ts";
import { addEntry, findEntry, listEntries, removeEntry } from "./directory.ts";
import { FsError } from "./errors.ts";
import { blocksSpanned, freeAllData, type Landing, readData, truncateData, writeData } from "./file-data.ts";
import type { IntentOp, OpContext } from "./intent-ops.ts";
import { type DirEntryRecord, emptyDirectory, type Inode, symlinkKey } from "./items.ts";
import {
  DIR_FIRST_SEQ,
  FILE_BYTES_MAX,
  NLINK_MAX,
  READ_BYTES_MAX,
  ROOT_INO,
  SYMLINK_TARGET_BYTES_MAX,
} from "./layout.ts";
import { checkName } from "./names.ts";
import {
  grantedAccess,
  inGroup,
  isRoot,
  R_OK,
  requirePermission,
  requireStickyAllows,
  W_OK,
  X_OK,
} from "./permissions.ts";
import { NotAVolumeError, VolumeStore } from "./store.ts";
import type {
  Attr,
  CreateAttrs,
  CreateHow,
  CreateResult,
  Credentials,
  DeviceNumbers,
  FileType,
  FsStat,
  LookupResult,
  NodeRef,
  ReadDirResult,
  ReadResult,
  RenameResult,
  SetAttrRequest,
  SpecialType,
  Stability,
  Timespec,
  Volume,
  Wcc,
  WccAttr,
  WriteResult,
} from "./types.ts";

export { NotAVolumeError };

const TXG_INTERVAL_MS_DEFAULT = 500;
/** Commit early once this much metadata (nodes) or data (blocks) waits in the open transaction group. */
const DIRTY_NODES_MAX = 4096;
/** Event-loop turns a group commit waits for more callers to join before it takes the lock. */
const GROUP_COMMIT_TURNS_MAX = 8;
const DIRTY_DATA_BLOCKS_MAX = 16_384;
/** Free blocks kept back for the commit's own metadata: growing operations leave more than shrinking ones. */
const RESERVE_GROW_BLOCKS = 128;
const RESERVE_SHRINK_BLOCKS = 32;
const READDIR_ENTRIES_MAX = 4096;

const DEFAULT_MODE: Record<FileType, number> = {
  reg: 0o644,
  dir: 0o755,
  lnk: 0o777,
  chr: 0o644,
  blk: 0o644,
  sock: 0o644,
  fifo: 0o644,
};

function checkInteger(value: number, what: string): void {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new FsError("INVAL", `${what} must be a non-negative integer, not ${String(value)}`);
  }
}

function checkTime(t: Timespec, what: string): void {
  if (
    !Number.isSafeInteger(t.sec) ||
    t.sec < 0 ||
    !Number.isInteger(t.nsec) ||
    t.nsec < 0 ||
    t.nsec > 999_999_999
  ) {
    throw new FsError("INVAL", `${what} is not a valid time`);
  }
}

function sameTime(a: Timespec, b: Timespec): boolean {
  return a.sec === b.sec && a.nsec === b.nsec;
}

/** What the intent log needs of a change: who made it, and the call (given the context it ran in). */
interface Intent {
  readonly cred: Credentials;
  readonly op: (at: OpContext) => IntentOp;
}

/** A plain copy of a reference, for the log. */
function refOf(ref: NodeRef): NodeRef {
  return { ino: ref.ino, gen: ref.gen };
}

function wccOf(inode: Inode): WccAttr {
  return { size: inode.size, mtime: inode.mtime, ctime: inode.ctime };
}

/** A mounted volume: checks, permissions and locking over the storage engine. */
class FlotillaVolume implements Volume {
  readonly rootRef: NodeRef;
  private readonly store: VolumeStore;
  private readonly clock: Clock;
  private readonly lock = new RwLock();
  private txgTimer: Disposable | null = null;
  private closed = false;
  /**
   * The group commit asked for but not yet begun. Callers that arrive before it begins share it: it
   * covers every operation that finished before it took the lock, theirs included.
   */
  private nextCommit: Promise<void> | null = null;
  /** Callers sharing `nextCommit`. */
  private groupMembers = 0;
  /** The clock's reading for the operation running under the lock: one time for all it changes. */
  private opNow: Timespec | null = null;
  /** The logged context of the operation being replayed from the intent log. */
  private replaying: OpContext | null = null;
  private readonly txgIntervalMs: number;

  constructor(store: VolumeStore, rootGen: number, clock: Clock, txgIntervalMs: number) {
    this.store = store;
    this.clock = clock;
    this.rootRef = { ino: ROOT_INO, gen: rootGen };
    this.txgIntervalMs = txgIntervalMs;
    store.onIntentLogFull = () => this.commitInBackground();
  }

  /**
   * Replays what the intent log holds past the newest transaction group, commits it, then starts
   * the commit timer. Mount calls it before anyone else sees the volume.
   */
  async start(): Promise<void> {
    const ops = this.store.logged;
    this.store.logged = [];
    for (const [i, op] of ops.entries()) {
      this.replaying = op.at;
      try {
        await this.apply(op);
      } catch (error) {
        throw new FsError(
          "IO",
          `replaying the intent log failed at operation ${i + 1} of ${ops.length} (${op.op}): ${String(error)}; run fsck`,
          { cause: error },
        );
      } finally {
        this.replaying = null;
      }
    }
    if (ops.length > 0) await this.commit();
    if (this.txgIntervalMs > 0)
      this.txgTimer = this.clock.every(this.txgIntervalMs, () => this.commitInBackground());
  }

  private apply(op: IntentOp): Promise<unknown> {
    const cred = op.at.cred;
    switch (op.op) {
      case "setattr":
        return this.setattr(cred, op.ref, op.request);
      case "create":
        return this.create(cred, op.dir, op.name, op.how);
      case "mkdir":
        return this.mkdir(cred, op.dir, op.name, op.attrs);
      case "symlink":
        return this.symlink(cred, op.dir, op.name, op.target, op.attrs);
      case "mknod":
        return this.mknod(cred, op.dir, op.name, op.type, op.attrs, op.rdev);
      case "remove":
        return this.remove(cred, op.dir, op.name);
      case "rmdir":
        return this.rmdir(cred, op.dir, op.name);
      case "rename":
        return this.rename(cred, op.from, op.fromName, op.to, op.toName);
      case "link":
        return this.link(cred, op.target, op.dir, op.name);
    }
  }

  /** The time of the operation running under the lock. */
  private now(): Timespec {
    return this.opNow ?? this.clock.now();
  }

  private commitInBackground(): void {
    if (this.closed || !this.store.hasChanges || this.store.failure !== null) return;
    // A failed background commit marks the store failed; the next operation reports it.
    this.commit().catch(() => undefined);
  }

  private usable(): void {
    if (this.closed) throw new FsError("IO", "the volume is unmounted");
    if (this.store.failure !== null) throw this.store.failure;
  }

  private reading<T>(work: () => Promise<T>): Promise<T> {
    // A failed or closed volume rejects: a promise-returning call never throws where it is made.
    try {
      this.usable();
    } catch (error) {
      return Promise.reject(error);
    }
    return this.lock.shared(work);
  }

  /**
   * Runs a change under the exclusive lock. `intent` describes it for the intent log, appended in
   * the order changes are made once it succeeded; replay runs the same path with the logged time
   * and inode numbers.
   */
  private changing<T>(work: () => Promise<T>, intent?: Intent): Promise<T> {
    try {
      this.usable();
    } catch (error) {
      return Promise.reject(error);
    }
    return this.lock.exclusive(async () => {
      this.usable();
      const replay = this.replaying;
      if (replay !== null) {
        assert(replay.nextIno >= this.store.nextIno, "inode numbers went backwards in the intent log");
        this.store.nextIno = replay.nextIno;
      }
      const now = replay?.now ?? this.clock.now();
      const nextIno = this.store.nextIno;
      this.opNow = now;
      let result: T;
      try {
        result = await work();
      } finally {
        this.opNow = null;
      }
      if (intent !== undefined && replay === null) {
        const { uid, gid, gids } = intent.cred;
        this.store.intentLog.append(intent.op({ cred: { uid, gid, gids: [...gids] }, now, nextIno }));
      }
      if (
        this.store.tree.dirtyNodeCount > DIRTY_NODES_MAX ||
        this.store.dirtyDataBlocks > DIRTY_DATA_BLOCKS_MAX
      ) {
        await this.store.commit();
      }
      return result;
    });
  }

  /** Makes sure `dataBlocks` can be allocated and the commit will still find room for its metadata. */
  private async ensureSpace(dataBlocks: number, kind: "grow" | "shrink"): Promise<void> {
    const fits = (): boolean => {
      const reserve =
        this.store.tree.dirtyNodeCount + (kind === "grow" ? RESERVE_GROW_BLOCKS : RESERVE_SHRINK_BLOCKS);
      return this.store.allocator.freeBlocks - dataBlocks >= reserve;
    };
    if (fits()) return;
    // Blocks freed in the open transaction group become free once it commits.
    if (this.store.hasChanges) {
      await this.store.commit();
      if (fits()) return;
    }
    throw new FsError(
      "NOSPC",
      `no space left on the volume (${this.store.allocator.freeBlocks} blocks free)`,
    );
  }

  private async inodeOf(ref: NodeRef): Promise<Inode> {
    if (
      ref === null ||
      typeof ref !== "object" ||
      !Number.isSafeInteger(ref.ino) ||
      !Number.isSafeInteger(ref.gen)
    ) {
      throw new FsError("STALE", "malformed object reference");
    }
    const inode = await this.store.getInode(ref.ino);
    if (inode === null) throw new FsError("STALE", `object ${ref.ino} no longer exists`);
    if (inode.gen !== ref.gen) throw new FsError("STALE", `object ${ref.ino} generation ${ref.gen} is gone`);
    return inode;
  }

  private async dirOf(ref: NodeRef): Promise<Inode> {
    const inode = await this.inodeOf(ref);
    if (inode.type !== "dir") throw new FsError("NOTDIR", `object ${ref.ino} is not a directory`);
    return inode;
  }

  private attrOf(inode: Inode): Attr {
    return {
      type: inode.type,
      mode: inode.mode,
      nlink: inode.nlink,
      uid: inode.uid,
      gid: inode.gid,
      size: inode.type === "dir" ? 64 * (inode.entryCount + 2) : inode.size,
      usedBytes: inode.dataBlocks * BLOCK_BYTES,
      rdev: { major: inode.rdevMajor, minor: inode.rdevMinor },
      fileid: inode.ino,
      gen: inode.gen,
      atime: inode.atime,
      mtime: inode.mtime,
      ctime: inode.ctime,
      change: inode.change,
    };
  }

  private changed(inode: Inode, now: Timespec, content: boolean): void {
    inode.ctime = now;
    if (content) inode.mtime = now;
    inode.change++;
  }

  private async loadChild(entry: DirEntryRecord): Promise<Inode> {
    const child = await this.store.getInode(entry.ino);
    if (child === null)
      throw new FsError("IO", `entry "${entry.name}" points to missing object ${entry.ino}`);
    return child;
  }

  getattr(ref: NodeRef): Promise<Attr> {
    return this.reading(async () => this.attrOf(await this.inodeOf(ref)));
  }

  lookup(cred: Credentials, dirRef: NodeRef, name: string): Promise<LookupResult> {
    return this.reading(async () => {
      const dir = await this.dirOf(dirRef);
      const nameBytes = checkName(name, "lookup");
      requirePermission(dir, cred, X_OK, "search the directory");
      let child: Inode | null;
      if (name === ".") child = dir;
      else if (name === "..") child = await this.store.getInode(dir.parent);
      else {
        const entry = await findEntry(this.store, dir.ino, nameBytes, name);
        if (entry === null) throw new FsError("NOENT", `no "${name}" in directory ${dir.ino}`);
        child = await this.loadChild(entry);
      }
      if (child === null) throw new FsError("IO", `directory ${dir.ino} has a missing parent`);
      return { ref: { ino: child.ino, gen: child.gen }, attr: this.attrOf(child), dirAttr: this.attrOf(dir) };
    });
  }

  access(cred: Credentials, ref: NodeRef, mask: number): Promise<{ granted: number; attr: Attr }> {
    return this.reading(async () => {
      const inode = await this.inodeOf(ref);
      return { granted: grantedAccess(inode, cred, mask), attr: this.attrOf(inode) };
    });
  }

  read(cred: Credentials, ref: NodeRef, offset: number, count: number): Promise<ReadResult> {
    return this.reading(async () => {
      const inode = await this.inodeOf(ref);
      if (inode.type === "dir") throw new FsError("ISDIR", `object ${inode.ino} is a directory`);
      if (inode.type !== "reg") throw new FsError("INVAL", `object ${inode.ino} is not a regular file`);
      requirePermission(inode, cred, R_OK, "read the file");
      checkInteger(offset, "offset");
      checkInteger(count, "count");
      const { bytes, release } = await readData(this.store, inode, offset, Math.min(count, READ_BYTES_MAX));
      const result = { data: bytes, eof: offset + bytes.length >= inode.size, attr: this.attrOf(inode) };
      return release === null ? result : { ...result, release };
    });
  }

  private async writeUnstable(
    cred: Credentials,
    ref: NodeRef,
    offset: number,
    data: Uint8Array,
  ): Promise<WriteResult> {
    const { reply, landing } = await this.changing(
      async (): Promise<{ reply: WriteResult; landing: Landing | null }> => {
        const inode = await this.inodeOf(ref);
        if (inode.type === "dir") throw new FsError("ISDIR", `object ${inode.ino} is a directory`);
        if (inode.type !== "reg") throw new FsError("INVAL", `object ${inode.ino} is not a regular file`);
        requirePermission(inode, cred, W_OK, "write the file");
        checkInteger(offset, "offset");
        if (!(data instanceof Uint8Array)) throw new FsError("INVAL", "data is not bytes");
        if (offset + data.length > FILE_BYTES_MAX)
          throw new FsError("FBIG", `a file cannot grow past ${FILE_BYTES_MAX} bytes`);
        const before = wccOf(inode);
        let landing: Landing | null = null;
        if (data.length > 0) {
          await this.ensureSpace(blocksSpanned(offset, data.length), "grow");
          landing = await writeData(this.store, inode, offset, data);
          this.changed(inode, this.now(), true);
          await this.store.putInode(inode);
        }
        return {
          reply: { count: data.length, committed: "unstable", wcc: { before, after: this.attrOf(inode) } },
          landing,
        };
      },
    );
    // Outside the lock: other calls go on while the device takes the data.
    if (landing?.landed) await landing.landed;
    const released =
      landing === null || !landing.usesCallerBytes || this.store.device.releasesWrittenData === true;
    return released ? { ...reply, dataReleased: true } : reply;
  }

  async write(
    cred: Credentials,
    ref: NodeRef,
    offset: number,
    data: Uint8Array,
    stability: Stability,
  ): Promise<WriteResult> {
    const result = await this.writeUnstable(cred, ref, offset, data);
    if (stability === "unstable") return result;
    // Outside the write's lock, so stable writes that arrive together share one commit.
    await this.commit();
    return { ...result, committed: "file-sync" };
  }

  setattr(cred: Credentials, ref: NodeRef, request: SetAttrRequest, guardCtime?: Timespec): Promise<Wcc> {
    return this.changing(
      async () => {
        const inode = await this.inodeOf(ref);
        if (guardCtime !== undefined && !sameTime(guardCtime, inode.ctime)) {
          throw new FsError("NOT_SYNC", `object ${inode.ino} changed since the client looked`);
        }
        const before = wccOf(inode);
        const now = this.now();
        await this.applySetattr(cred, inode, request, now);
        await this.store.putInode(inode);
        return { before, after: this.attrOf(inode) };
      },
      { cred, op: (at) => ({ op: "setattr", at, ref: refOf(ref), request }) },
    );
  }

  private async applySetattr(
    cred: Credentials,
    inode: Inode,
    request: SetAttrRequest,
    now: Timespec,
  ): Promise<void> {
    const owner = isRoot(cred) || cred.uid === inode.uid;
    if (request.size !== undefined) {
      if (inode.type === "dir") throw new FsError("ISDIR", `object ${inode.ino} is a directory`);
      if (inode.type !== "reg") throw new FsError("INVAL", `object ${inode.ino} is not a regular file`);
      checkInteger(request.size, "size");
      if (request.size > FILE_BYTES_MAX)
        throw new FsError("FBIG", `a file cannot grow past ${FILE_BYTES_MAX} bytes`);
      requirePermission(inode, cred, W_OK, "change the file's size");
    }
    if (request.mode !== undefined) {
      checkInteger(request.mode, "mode");
      if (!owner) throw new FsError("PERM", "only the owner may change the mode");
    }
    if (request.uid !== undefined) {
      checkInteger(request.uid, "uid");
      if (!isRoot(cred) && !(cred.uid === inode.uid && request.uid === inode.uid)) {
        throw new FsError("PERM", "only root may change the owner");
      }
    }
    if (request.gid !== undefined) {
      checkInteger(request.gid, "gid");
      const allowed = isRoot(cred) || (cred.uid === inode.uid && inGroup(cred, request.gid));
      if (!allowed) throw new FsError("PERM", "not allowed to change the group");
    }
    for (const [what, setting] of [
      ["atime", request.atime],
      ["mtime", request.mtime],
    ] as const) {
      if (setting === undefined) continue;
      if (setting === "server") {
        if (!owner) requirePermission(inode, cred, W_OK, `set ${what}`);
      } else {
        checkTime(setting, what);
        if (!owner) throw new FsError("PERM", `only the owner may set ${what} to a given time`);
      }
    }
    if (request.size !== undefined && request.size !== inode.size) {
      if (request.size < inode.size) await this.ensureSpace(1, "shrink");
      await truncateData(this.store, inode, request.size);
      inode.mtime = now;
    }
    if (request.mode !== undefined) inode.mode = request.mode & 0o7777;
    const idChange =
      (request.uid !== undefined && request.uid !== inode.uid) ||
      (request.gid !== undefined && request.gid !== inode.gid);
    if (request.uid !== undefined) inode.uid = request.uid;
    if (request.gid !== undefined) inode.gid = request.gid;
    if (idChange && !isRoot(cred) && inode.type !== "dir") inode.mode &= ~0o6000;
    if (request.atime !== undefined) inode.atime = request.atime === "server" ? now : request.atime;
    if (request.mtime !== undefined) inode.mtime = request.mtime === "server" ? now : request.mtime;
    this.changed(inode, now, false);
  }

  /** Common steps of every operation that makes a new entry: checks, then the new inode. */
  private async prepareNew(
    cred: Credentials,
    dirRef: NodeRef,
    name: string,
  ): Promise<{ dir: Inode; nameBytes: Uint8Array; existing: DirEntryRecord | null }> {
    const dir = await this.dirOf(dirRef);
    const nameBytes = checkName(name, "new");
    requirePermission(dir, cred, W_OK | X_OK, "change the directory");
    return { dir, nameBytes, existing: await findEntry(this.store, dir.ino, nameBytes, name) };
  }

  private async makeNode(
    cred: Credentials,
    dir: Inode,
    nameBytes: Uint8Array,
    name: string,
    type: FileType,
    attrs: CreateAttrs,
    extra: { rdev?: DeviceNumbers; verifier?: Uint8Array; size?: number },
  ): Promise<CreateResult> {
    await this.ensureSpace(0, "grow");
    const before = wccOf(dir);
    const now = this.now();
    const ino = this.store.allocateIno();
    const setgidDir = (dir.mode & 0o2000) !== 0;
    let mode = (attrs.mode ?? DEFAULT_MODE[type]) & 0o7777;
    if (type === "dir" && setgidDir) mode |= 0o2000;
    const root = isRoot(cred);
    const inode: Inode = {
      ino,
      gen: this.store.generationFor(ino),
      type,
      mode,
      nlink: type === "dir" ? 2 : 1,
      uid: root && attrs.uid !== undefined ? attrs.uid : cred.uid,
      gid: root && attrs.gid !== undefined ? attrs.gid : setgidDir ? dir.gid : cred.gid,
      size: extra.size ?? 0,
      dataBlocks: 0,
      rdevMajor: extra.rdev?.major ?? 0,
      rdevMinor: extra.rdev?.minor ?? 0,
      atime: attrs.atime === undefined || attrs.atime === "server" ? now : attrs.atime,
      mtime: attrs.mtime === undefined || attrs.mtime === "server" ? now : attrs.mtime,
      ctime: now,
      change: 1,
      parent: type === "dir" ? dir.ino : 0,
      nextSeq: DIR_FIRST_SEQ,
      entryCount: 0,
      verifier: extra.verifier ?? null,
    };
    if (attrs.size !== undefined && type === "reg" && attrs.size > 0) {
      checkInteger(attrs.size, "size");
      if (attrs.size > FILE_BYTES_MAX)
        throw new FsError("FBIG", `a file cannot grow past ${FILE_BYTES_MAX} bytes`);
      inode.size = attrs.size;
    }
    await addEntry(this.store, dir, nameBytes, name, inode);
    if (type === "dir") dir.nlink++;
    this.changed(dir, now, true);
    this.store.inodeCount++;
    await this.store.putInode(inode);
    await this.store.putInode(dir);
    return {
      ref: { ino, gen: inode.gen },
      attr: this.attrOf(inode),
      dir: { before, after: this.attrOf(dir) },
    };
  }

  create(cred: Credentials, dirRef: NodeRef, name: string, how: CreateHow): Promise<CreateResult> {
    return this.changing(
      async () => {
        const { dir, nameBytes, existing } = await this.prepareNew(cred, dirRef, name);
        if (
          how.kind === "exclusive" &&
          (!(how.verifier instanceof Uint8Array) || how.verifier.length !== 8)
        ) {
          throw new FsError("INVAL", "an exclusive create needs an 8-byte verifier");
        }
        if (existing !== null) return this.createExisting(cred, dir, existing, how);
        const attrs = how.kind === "exclusive" ? {} : how.attrs;
        const extra = how.kind === "exclusive" ? { verifier: how.verifier.slice() } : {};
        return this.makeNode(cred, dir, nameBytes, name, "reg", attrs, extra);
      },
      { cred, op: (at) => ({ op: "create", at, dir: refOf(dirRef), name, how }) },
    );
  }

  private async createExisting(
    cred: Credentials,
    dir: Inode,
    existing: DirEntryRecord,
    how: CreateHow,
  ): Promise<CreateResult> {
    const file = await this.loadChild(existing);
    const dirWcc: Wcc = { before: wccOf(dir), after: this.attrOf(dir) };
    const result = (): CreateResult => ({
      ref: { ino: file.ino, gen: file.gen },
      attr: this.attrOf(file),
      dir: dirWcc,
    });
    if (how.kind === "guarded" || file.type !== "reg")
      throw new FsError("EXIST", `"${existing.name}" exists`);
    if (how.kind === "exclusive") {
      const same = file.verifier?.every((b, i) => b === how.verifier[i]);
      if (!same) throw new FsError("EXIST", `"${existing.name}" exists`);
      return result();
    }
    if (how.attrs.size !== undefined && how.attrs.size !== file.size) {
      await this.applySetattr(cred, file, { size: how.attrs.size }, this.now());
      await this.store.putInode(file);
    }
    return result();
  }

  mkdir(cred: Credentials, dirRef: NodeRef, name: string, attrs: CreateAttrs): Promise<CreateResult> {
    return this.changing(
      async () => {
        const { dir, nameBytes, existing } = await this.prepareNew(cred, dirRef, name);
        if (existing !== null) throw new FsError("EXIST", `"${name}" exists`);
        return this.makeNode(cred, dir, nameBytes, name, "dir", attrs, {});
      },
      { cred, op: (at) => ({ op: "mkdir", at, dir: refOf(dirRef), name, attrs }) },
    );
  }

  symlink(
    cred: Credentials,
    dirRef: NodeRef,
    name: string,
    target: string,
    attrs: CreateAttrs,
  ): Promise<CreateResult> {
    return this.changing(
      async () => {
        const { dir, nameBytes, existing } = await this.prepareNew(cred, dirRef, name);
        if (typeof target !== "string" || target.length === 0)
          throw new FsError("INVAL", "empty symlink target");
        const targetBytes = utf8(target);
        if (targetBytes.length > SYMLINK_TARGET_BYTES_MAX) {
          throw new FsError(
            "NAMETOOLONG",
            `symlink target of ${targetBytes.length} bytes exceeds ${SYMLINK_TARGET_BYTES_MAX}`,
          );
        }
        if (existing !== null) throw new FsError("EXIST", `"${name}" exists`);
        const attrsOfLink = { ...attrs, size: undefined };
        const result = await this.makeNode(cred, dir, nameBytes, name, "lnk", attrsOfLink, {
          size: targetBytes.length,
        });
        await this.store.tree.put(symlinkKey(result.ref.ino), targetBytes);
        return result;
      },
      { cred, op: (at) => ({ op: "symlink", at, dir: refOf(dirRef), name, target, attrs }) },
    );
  }

  readlink(_cred: Credentials, ref: NodeRef): Promise<{ target: string; attr: Attr }> {
    return this.reading(async () => {
      const inode = await this.inodeOf(ref);
      if (inode.type !== "lnk") throw new FsError("INVAL", `object ${inode.ino} is not a symbolic link`);
      const target = await this.store.tree.get(symlinkKey(inode.ino));
      if (target === undefined) throw new FsError("IO", `symbolic link ${inode.ino} has no target`);
      return { target: new TextDecoder().decode(target), attr: this.attrOf(inode) };
    });
  }

  mknod(
    cred: Credentials,
    dirRef: NodeRef,
    name: string,
    type: SpecialType,
    attrs: CreateAttrs,
    rdev?: DeviceNumbers,
  ): Promise<CreateResult> {
    return this.changing(
      async () => {
        const { dir, nameBytes, existing } = await this.prepareNew(cred, dirRef, name);
        if (!["chr", "blk", "sock", "fifo"].includes(type))
          throw new FsError("BADTYPE", `cannot make a node of type ${type}`);
        if ((type === "chr" || type === "blk") && !isRoot(cred))
          throw new FsError("PERM", "only root may make device nodes");
        if (existing !== null) throw new FsError("EXIST", `"${name}" exists`);
        const device = type === "chr" || type === "blk" ? (rdev ?? { major: 0, minor: 0 }) : undefined;
        if (device !== undefined) {
          checkInteger(device.major, "major");
          checkInteger(device.minor, "minor");
        }
        return this.makeNode(
          cred,
          dir,
          nameBytes,
          name,
          type,
          { ...attrs, size: undefined },
          device === undefined ? {} : { rdev: device },
        );
      },
      {
        cred,
        op: (at) => ({
          op: "mknod",
          at,
          dir: refOf(dirRef),
          name,
          type,
          attrs,
          ...(rdev === undefined ? {} : { rdev }),
        }),
      },
    );
  }

  /** Drops one link; the object is deleted with its last link. */
  private async unlinkObject(inode: Inode, now: Timespec): Promise<void> {
    inode.nlink -= inode.type === "dir" ? 2 : 1;
    if (!(inode.nlink >= 0)) assertionFailed(`object ${inode.ino} lost more links than it had`);
    if (inode.nlink > 0) {
      this.changed(inode, now, false);
      await this.store.putInode(inode);
      return;
    }
    await freeAllData(this.store, inode);
    if (inode.type === "lnk") await this.store.tree.delete(symlinkKey(inode.ino));
    await this.store.deleteInode(inode.ino);
  }

  private async removeCommon(
    cred: Credentials,
    dirRef: NodeRef,
    name: string,
    wantDir: boolean,
  ): Promise<Wcc> {
    const dir = await this.dirOf(dirRef);
    const nameBytes = checkName(name, "existing");
    requirePermission(dir, cred, W_OK | X_OK, "change the directory");
    const entry = await findEntry(this.store, dir.ino, nameBytes, name);
    if (entry === null) throw new FsError("NOENT", `no "${name}" in directory ${dir.ino}`);
    const child = await this.loadChild(entry);
    if (wantDir && child.type !== "dir") throw new FsError("NOTDIR", `"${name}" is not a directory`);
    if (!wantDir && child.type === "dir") throw new FsError("ISDIR", `"${name}" is a directory`);
    requireStickyAllows(dir, child, cred, name);
    if (wantDir && child.entryCount > 0) throw new FsError("NOTEMPTY", `directory "${name}" is not empty`);
    await this.ensureSpace(0, "shrink");
    const before = wccOf(dir);
    const now = this.now();
    await removeEntry(this.store, dir, entry, nameBytes);
    if (wantDir) dir.nlink--;
    this.changed(dir, now, true);
    await this.store.putInode(dir);
    await this.unlinkObject(child, now);
    return { before, after: this.attrOf(dir) };
  }

  remove(cred: Credentials, dirRef: NodeRef, name: string): Promise<Wcc> {
    return this.changing(() => this.removeCommon(cred, dirRef, name, false), {
      cred,
      op: (at) => ({ op: "remove", at, dir: refOf(dirRef), name }),
    });
  }

  rmdir(cred: Credentials, dirRef: NodeRef, name: string): Promise<Wcc> {
    return this.changing(() => this.removeCommon(cred, dirRef, name, true), {
      cred,
      op: (at) => ({ op: "rmdir", at, dir: refOf(dirRef), name }),
    });
  }

  rename(
    cred: Credentials,
    fromRef: NodeRef,
    fromName: string,
    toRef: NodeRef,
    toName: string,
  ): Promise<RenameResult> {
    return this.changing(
      async () => {
        const fromDir = await this.inodeOf(fromRef);
        const loadedTo = await this.inodeOf(toRef);
        if (fromDir.type !== "dir") throw new FsError("NOTDIR", `object ${fromDir.ino} is not a directory`);
        if (loadedTo.type !== "dir") throw new FsError("NOTDIR", `object ${loadedTo.ino} is not a directory`);
        const toDir = loadedTo.ino === fromDir.ino ? fromDir : loadedTo;
        const fromBytes = checkName(fromName, "existing");
        const toBytes = checkName(toName, "existing");
        requirePermission(fromDir, cred, W_OK | X_OK, "change the source directory");
        requirePermission(toDir, cred, W_OK | X_OK, "change the target directory");
        const entry = await findEntry(this.store, fromDir.ino, fromBytes, fromName);
        if (entry === null) throw new FsError("NOENT", `no "${fromName}" in directory ${fromDir.ino}`);
        const source = await this.loadChild(entry);
        requireStickyAllows(fromDir, source, cred, fromName);
        if (source.type === "dir") await this.refuseMoveIntoItself(source, toDir);
        const targetEntry = await findEntry(this.store, toDir.ino, toBytes, toName);
        const fromBefore = wccOf(fromDir);
        const toBefore = wccOf(toDir);
        const result = (): RenameResult => ({
          from: { before: fromBefore, after: this.attrOf(fromDir) },
          to: { before: toBefore, after: this.attrOf(toDir) },
        });
        if (targetEntry !== null && targetEntry.ino === source.ino) return result();
        const target = targetEntry === null ? null : await this.loadChild(targetEntry);
        if (target !== null) {
          if (source.type === "dir" && target.type !== "dir")
            throw new FsError("NOTDIR", `"${toName}" is not a directory`);
          if (source.type !== "dir" && target.type === "dir")
            throw new FsError("ISDIR", `"${toName}" is a directory`);
          if (target.type === "dir" && target.entryCount > 0)
            throw new FsError("NOTEMPTY", `directory "${toName}" is not empty`);
          requireStickyAllows(toDir, target, cred, toName);
        }
        await this.ensureSpace(0, "grow");
        const now = this.now();
        if (target !== null && targetEntry !== null) {
          await removeEntry(this.store, toDir, targetEntry, toBytes);
          if (target.type === "dir") toDir.nlink--;
          await this.unlinkObject(target, now);
        }
        await removeEntry(this.store, fromDir, entry, fromBytes);
        await addEntry(this.store, toDir, toBytes, toName, source);
        if (source.type === "dir" && toDir !== fromDir) {
          fromDir.nlink--;
          toDir.nlink++;
          source.parent = toDir.ino;
        }
        this.changed(source, now, false);
        this.changed(fromDir, now, true);
        if (toDir !== fromDir) this.changed(toDir, now, true);
        await this.store.putInode(source);
        await this.store.putInode(fromDir);
        if (toDir !== fromDir) await this.store.putInode(toDir);
        return result();
      },
      { cred, op: (at) => ({ op: "rename", at, from: refOf(fromRef), fromName, to: refOf(toRef), toName }) },
    );
  }

  /** A directory cannot move into itself or below itself: walk up from the target to the root. */
  private async refuseMoveIntoItself(source: Inode, toDir: Inode): Promise<void> {
    let at = toDir;
    for (let depth = 0; ; depth++) {
      assert(depth < 1_000_000, "directory parent chain does not reach the root");
      if (at.ino === source.ino)
        throw new FsError("INVAL", `cannot move directory ${source.ino} into itself`);
      if (at.ino === ROOT_INO) return;
      const parent = await this.store.getInode(at.parent);
      if (parent === null) throw new FsError("IO", `directory ${at.ino} has a missing parent ${at.parent}`);
      at = parent;
    }
  }

  link(
    cred: Credentials,
    targetRef: NodeRef,
    dirRef: NodeRef,
    name: string,
  ): Promise<{ attr: Attr; dir: Wcc }> {
    return this.changing(
      async () => {
        const target = await this.inodeOf(targetRef);
        const dir = await this.dirOf(dirRef);
        if (target.type === "dir") throw new FsError("ISDIR", "cannot hard-link a directory");
        const nameBytes = checkName(name, "new");
        requirePermission(dir, cred, W_OK | X_OK, "change the directory");
        if ((await findEntry(this.store, dir.ino, nameBytes, name)) !== null)
          throw new FsError("EXIST", `"${name}" exists`);
        if (target.nlink >= NLINK_MAX)
          throw new FsError("MLINK", `object ${target.ino} has ${target.nlink} links already`);
        await this.ensureSpace(0, "grow");
        const before = wccOf(dir);
        const now = this.now();
        await addEntry(this.store, dir, nameBytes, name, target);
        target.nlink++;
        this.changed(target, now, false);
        this.changed(dir, now, true);
        await this.store.putInode(target);
        await this.store.putInode(dir);
        return { attr: this.attrOf(target), dir: { before, after: this.attrOf(dir) } };
      },
      { cred, op: (at) => ({ op: "link", at, target: refOf(targetRef), dir: refOf(dirRef), name }) },
    );
  }

  readdir(
    cred: Credentials,
    dirRef: NodeRef,
    cookie: number,
    verifier: bigint,
    maxEntries: number,
  ): Promise<ReadDirResult> {
    return this.reading(async () => {
      const dir = await this.dirOf(dirRef);
      requirePermission(dir, cred, R_OK, "list the directory");
      checkInteger(cookie, "cookie");
      if (!Number.isSafeInteger(maxEntries) || maxEntries < 1)
        throw new FsError("INVAL", "maxEntries must be at least 1");
      const current = (BigInt(dir.nextSeq) << 32n) | BigInt(dir.entryCount);
      if (cookie !== 0 && verifier !== 0n && verifier !== current) {
        throw new FsError("BAD_COOKIE", `directory ${dir.ino} changed since the cookie was handed out`);
      }
      const afterSeq = Math.max(cookie, DIR_FIRST_SEQ - 1);
      const { entries, more } = await listEntries(
        this.store,
        dir.ino,
        afterSeq,
        Math.min(maxEntries, READDIR_ENTRIES_MAX),
      );
      return {
        entries: entries.map((e) => ({
          name: e.name,
          fileid: e.ino,
          cookie: e.seq,
          ref: { ino: e.ino, gen: e.gen },
          type: e.type,
        })),
        verifier: current,
        eof: !more,
        dirAttr: this.attrOf(dir),
      };
    });
  }

  fsstat(): Promise<FsStat> {
    return this.reading(async () => {
      const free = Math.max(0, this.store.allocator.freeBlocks - RESERVE_GROW_BLOCKS);
      return {
        totalBytes: this.store.blockCount * BLOCK_BYTES,
        freeBytes: free * BLOCK_BYTES,
        availBytes: free * BLOCK_BYTES,
        totalFiles: this.store.inodeCount + free,
        freeFiles: free,
        availFiles: free,
      };
    });
  }

  sync(): Promise<void> {
    try {
      this.usable();
    } catch (error) {
      return Promise.reject(error);
    }
    return this.store.intentLog.durable();
  }

  commit(): Promise<void> {
    this.usable();
    if (this.nextCommit !== null) {
      this.groupMembers++;
      return this.nextCommit;
    }
    this.groupMembers = 1;
    const committing = this.gatherGroup().then(() =>
      this.lock.exclusive(async () => {
        // Operations finishing from now on may be missed by this group: later callers need the next.
        if (this.nextCommit === committing) this.nextCommit = null;
        await this.store.commit();
      }),
    );
    this.nextCommit = committing;
    return committing;
  }

  /**
   * Lets calls that have already arrived (on the sockets, in the lock's queue) join the group before
   * it takes the lock: it yields to the event loop while the group still grows, a few turns at most.
   * Turns of the event loop, not a timer, so a lone caller waits only microseconds.
   */
  private async gatherGroup(): Promise<void> {
    for (let turn = 0; turn < GROUP_COMMIT_TURNS_MAX; turn++) {
      const members = this.groupMembers;
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.groupMembers === members && turn > 0) return;
    }
  }

  async unmount(): Promise<void> {
    if (this.closed) return;
    await this.lock.exclusive(async () => {
      if (this.closed) return;
      this.closed = true;
      this.txgTimer?.[Symbol.dispose]();
      try {
        if (this.store.failure === null) await this.store.commit();
      } finally {
        await this.store.landing.flushedAhead();
        await this.store.device.close();
      }
    });
  }

  /** For fsck and tests: the storage engine underneath. */
  get engine(): VolumeStore {
    return this.store;
  }
}

/** Writes an empty file system (a root directory owned by root, mode 0755) onto the device. */
export async function mkfs(device: BlockDevice, options: MkfsOptions = {}): Promise<void> {
  const clock = options.clock ?? systemClock;
  const now = clock.now();
  const store = await VolumeStore.format(device, now.sec);
  const root = emptyDirectory(
    ROOT_INO,
    store.generationFor(ROOT_INO),
    ROOT_INO,
    { mode: 0o755, uid: 0, gid: 0 },
    now,
  );

  store.inodeCount = 1;
  await store.putInode(root);
  await store.commit();
}

/** Mounts the newest committed transaction group. Costs two superblock reads and the root node. */
export async function mount(device: BlockDevice, options: MountOptions = {}): Promise<Volume> {
  const store = await VolumeStore.open(device, options.cacheBytes);
  const root = await store.getInode(ROOT_INO);
  if (root === null || root.type !== "dir") throw new FsError("IO", "the volume has no root directory");
  const volume = new FlotillaVolume(
    store,
    root.gen,
    options.clock ?? systemClock,
    options.txgIntervalMs ?? TXG_INTERVAL_MS_DEFAULT,
  );
  await volume.start();
  return volume;
}

/** The storage engine under a volume returned by `mount` (for fsck, tools and tests). */
export function engineOf(volume: Volume): VolumeStore {
  assert(volume instanceof FlotillaVolume, "not a Flotilla volume");
  return volume.engine;
}
