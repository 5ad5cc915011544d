/**
 * A reference model of the volume file system: the contract of docs/fs-semantics.md written as plainly
 * as possible, in memory, with no blocks, trees or transactions. Property and crash tests run the same
 * operations on the model and on a real volume and compare what they observe.
 *
 * It imports only the public types and errors of src/fs, so it checks the implementation rather than
 * sharing its code. Timestamps are not modelled beyond what the ctime guard needs (ctime is a counter).
 */
import type {
  Attr,
  CreateAttrs,
  CreateHow,
  CreateResult,
  Credentials,
  DeviceNumbers,
  DirEntry,
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
  WriteResult,
} from "../../src/fs/index.ts";
import { ACCESS, FsError } from "../../src/fs/index.ts";

export const NAME_BYTES_MAX = 255;
export const SYMLINK_TARGET_BYTES_MAX = 1024;
export const FILE_BYTES_MAX = 2 ** 43;
export const LINK_COUNT_MAX = 65_000;
export const READ_BYTES_MAX = 4 * 1024 * 1024;
/** `usedBytes` counts the file's mapped blocks of this size. */
export const DATA_BLOCK_BYTES = 4096;

/** File data lives in fixed chunks; a missing chunk is a hole (zeros). Chunks are never mutated in place. */
export const MODEL_CHUNK_BYTES = 64 * 1024;

const ROOT_INO = 1;

interface ModelEntry {
  readonly ino: number;
  /** The position of the entry in its directory: a READDIR cookie. */
  readonly cookie: number;
}

interface ModelInode {
  readonly ino: number;
  readonly gen: number;
  readonly type: FileType;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  /** Regular files only. */
  size: number;
  chunks: Map<number, Uint8Array>;
  /** Regular files: indexes of the 4 KiB blocks that writes mapped (holes are not mapped). */
  mapped: Set<number>;
  /** Bumped whenever the file's bytes or size change (a cache key for content digests). */
  dataVersion: number;
  target: string;
  rdev: DeviceNumbers;
  /** Directories: name → entry, in insertion order, which is cookie order. */
  entries: Map<string, ModelEntry>;
  nextCookie: number;
  /** Directories: changes whenever the entries change. */
  verifier: bigint;
  /** Directories: the containing directory (the root's is itself). */
  parent: number;
  /** Set by an exclusive create: the verifier, as hex. */
  exclusiveVerifier: string | undefined;
  /** A counter standing in for ctime; the guard of setattr compares it. */
  ctimeTick: number;
  change: number;
}

export interface ModelOptions {
  /** Attributes of the root directory (mkfs decides them; the contract does not). */
  readonly rootMode?: number;
  readonly rootUid?: number;
  readonly rootGid?: number;
}

function fail(code: FsError["code"], message: string): never {
  throw new FsError(code, message);
}

function isSafeNonNegative(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 0;
}

function utf8Bytes(text: string): number {
  return Buffer.byteLength(text, "utf8");
}

function verifierHex(verifier: Uint8Array): string {
  return Buffer.from(verifier).toString("hex");
}

/** The in-memory reference model; implements the same `Volume` interface as the real file system. */
export class ModelVolume implements Volume {
  readonly rootRef: NodeRef;
  private inodes = new Map<number, ModelInode>();
  private nextIno = ROOT_INO + 1;
  private tick = 1;
  private nextVerifier = 1n;

  constructor(options: ModelOptions = {}) {
    const root = this.newInode(
      ROOT_INO,
      "dir",
      options.rootMode ?? 0o755,
      options.rootUid ?? 0,
      options.rootGid ?? 0,
    );
    root.nlink = 2;
    root.parent = ROOT_INO;
    this.inodes.set(ROOT_INO, root);
    this.rootRef = { ino: ROOT_INO, gen: root.gen };
  }

  /** A deep copy: later operations on either copy do not affect the other. */
  clone(): ModelVolume {
    const copy = Object.create(ModelVolume.prototype) as ModelVolume;
    const inodes = new Map<number, ModelInode>();
    for (const [ino, node] of this.inodes) {
      inodes.set(ino, {
        ...node,
        chunks: new Map(node.chunks),
        mapped: new Set(node.mapped),
        entries: new Map(node.entries),
      });
    }
    Object.assign(copy, {
      rootRef: this.rootRef,
      inodes,
      nextIno: this.nextIno,
      tick: this.tick,
      nextVerifier: this.nextVerifier,
    });
    return copy;
  }

  /** Offsets of the chunks holding written data (everything else is a hole), for choosing what to read. */
  dataChunkOffsets(ref: NodeRef): number[] {
    const node = this.node(ref);
    return [...node.chunks.keys()].sort((a, b) => a - b).map((index) => index * MODEL_CHUNK_BYTES);
  }

  /** Changes whenever the object's bytes or size change: a cache key for content digests. */
  contentKey(ref: NodeRef): string {
    const node = this.node(ref);
    return `${node.ino}:${node.dataVersion}`;
  }

  /** Number of live objects, root included. */
  get objectCount(): number {
    return this.inodes.size;
  }

  // ---- Volume ----

  async getattr(ref: NodeRef): Promise<Attr> {
    return this.attr(this.node(ref));
  }

  async setattr(
    cred: Credentials,
    ref: NodeRef,
    request: SetAttrRequest,
    guardCtime?: Timespec,
  ): Promise<Wcc> {
    const node = this.node(ref);
    if (guardCtime !== undefined) {
      const ctime = this.ctime(node);
      if (guardCtime.sec !== ctime.sec || guardCtime.nsec !== ctime.nsec) fail("NOT_SYNC", "ctime guard");
    }
    const root = cred.uid === 0;
    const ownerOrRoot = root || cred.uid === node.uid;
    if (request.size !== undefined) {
      if (node.type === "dir") fail("ISDIR", "size of a directory");
      if (node.type !== "reg") fail("INVAL", "size of a non-regular file");
      if (!isSafeNonNegative(request.size)) fail("INVAL", "bad size");
      if (request.size > FILE_BYTES_MAX) fail("FBIG", "size above bound");
      if (!this.permits(cred, node, 2)) fail("ACCES", "size needs write permission");
    }
    if (request.mode !== undefined && !ownerOrRoot) fail("PERM", "mode: owner or root");
    if (request.uid !== undefined && !root && !(cred.uid === node.uid && request.uid === node.uid))
      fail("PERM", "uid: root only");
    if (request.gid !== undefined && !root) {
      const ownGroup = request.gid === cred.gid || cred.gids.includes(request.gid);
      if (cred.uid !== node.uid || !ownGroup) fail("PERM", "gid: root, or owner to own group");
    }
    for (const time of [request.atime, request.mtime]) {
      if (time === undefined) continue;
      if (time === "server") {
        if (!ownerOrRoot && !this.permits(cred, node, 2)) fail("ACCES", "server time needs write");
      } else if (!ownerOrRoot) {
        fail("PERM", "explicit time: owner or root");
      }
    }
    const before = this.wccAttr(node);
    if (request.mode !== undefined) node.mode = request.mode & 0o7777;
    const owners = { uid: node.uid, gid: node.gid };
    if (request.uid !== undefined) node.uid = request.uid;
    if (request.gid !== undefined) node.gid = request.gid;
    const ownersChanged = node.uid !== owners.uid || node.gid !== owners.gid;
    if (ownersChanged && !root && node.type !== "dir") node.mode &= ~0o6000;
    if (request.size !== undefined) this.resize(node, request.size);
    this.touch(node);
    return { before, after: this.attr(node) };
  }

  async lookup(cred: Credentials, dirRef: NodeRef, name: string): Promise<LookupResult> {
    const dir = this.node(dirRef);
    this.requireDir(dir);
    this.checkName(name);
    if (!this.permits(cred, dir, 1)) fail("ACCES", "lookup needs search permission");
    let ino: number;
    if (name === ".") ino = dir.ino;
    else if (name === "..") ino = dir.parent;
    else {
      const entry = dir.entries.get(name);
      if (entry === undefined) fail("NOENT", name);
      ino = entry.ino;
    }
    const found = this.inode(ino);
    return { ref: this.ref(found), attr: this.attr(found), dirAttr: this.attr(dir) };
  }

  async access(cred: Credentials, ref: NodeRef, mask: number): Promise<{ granted: number; attr: Attr }> {
    const node = this.node(ref);
    let granted = 0;
    const read = this.permits(cred, node, 4);
    const write = this.permits(cred, node, 2);
    const exec = this.permits(cred, node, 1);
    if (read) granted |= ACCESS.READ;
    if (write) granted |= ACCESS.MODIFY | ACCESS.EXTEND;
    if (node.type === "dir") {
      if (exec) granted |= ACCESS.LOOKUP;
      if (write) granted |= ACCESS.DELETE;
    } else if (exec) {
      granted |= ACCESS.EXECUTE;
    }
    return { granted: granted & mask, attr: this.attr(node) };
  }

  async read(cred: Credentials, ref: NodeRef, offset: number, count: number): Promise<ReadResult> {
    const node = this.node(ref);
    this.requireRegular(node);
    if (!this.permits(cred, node, 4)) fail("ACCES", "read needs read permission");
    if (!isSafeNonNegative(offset) || !isSafeNonNegative(count)) fail("INVAL", "bad offset or count");
    if (offset >= node.size) return { data: new Uint8Array(0), eof: true, attr: this.attr(node) };
    const length = Math.min(count, READ_BYTES_MAX, node.size - offset);
    return {
      data: this.readBytes(node, offset, length),
      eof: offset + length >= node.size,
      attr: this.attr(node),
    };
  }

  async write(
    cred: Credentials,
    ref: NodeRef,
    offset: number,
    data: Uint8Array,
    stability: Stability,
  ): Promise<WriteResult> {
    const node = this.node(ref);
    this.requireRegular(node);
    if (!this.permits(cred, node, 2)) fail("ACCES", "write needs write permission");
    if (!isSafeNonNegative(offset)) fail("INVAL", "bad offset");
    if (offset + data.length > FILE_BYTES_MAX) fail("FBIG", "write beyond the size bound");
    const before = this.wccAttr(node);
    if (data.length > 0) {
      this.writeBytes(node, offset, data);
      if (offset + data.length > node.size) node.size = offset + data.length;
      node.dataVersion++;
      this.touch(node);
    }
    return { count: data.length, committed: stability, wcc: { before, after: this.attr(node) } };
  }

  async create(cred: Credentials, dirRef: NodeRef, name: string, how: CreateHow): Promise<CreateResult> {
    const dir = this.enterForNewEntry(cred, dirRef, name);
    const before = this.wccAttr(dir);
    const existing = this.existing(dir, name);
    if (existing !== undefined) {
      if (how.kind === "unchecked" && existing.type === "reg") {
        const size = how.attrs.size;
        if (size !== undefined && size !== existing.size) {
          if (!this.permits(cred, existing, 2)) fail("ACCES", "changing the size needs write permission");
          this.resize(existing, size);
          this.touch(existing);
        }
        return this.createResult(existing, dir, before);
      }
      const retry =
        how.kind === "exclusive" &&
        existing.type === "reg" &&
        existing.exclusiveVerifier === verifierHex(how.verifier);
      if (retry) return this.createResult(existing, dir, before);
      fail("EXIST", name);
    }
    const attrs: CreateAttrs = how.kind === "exclusive" ? {} : how.attrs;
    const node = this.makeChild(cred, dir, name, "reg", attrs, 0o644);
    if (how.kind === "exclusive") node.exclusiveVerifier = verifierHex(how.verifier);
    if (attrs.size !== undefined && attrs.size > 0) this.resize(node, attrs.size);
    return this.createResult(node, dir, before);
  }

  async mkdir(cred: Credentials, dirRef: NodeRef, name: string, attrs: CreateAttrs): Promise<CreateResult> {
    const dir = this.enterForNewEntry(cred, dirRef, name);
    const before = this.wccAttr(dir);
    if (this.existing(dir, name) !== undefined) fail("EXIST", name);
    const node = this.makeChild(cred, dir, name, "dir", attrs, 0o755);
    return this.createResult(node, dir, before);
  }

  async symlink(
    cred: Credentials,
    dirRef: NodeRef,
    name: string,
    target: string,
    attrs: CreateAttrs,
  ): Promise<CreateResult> {
    const dir = this.enterForNewEntry(cred, dirRef, name);
    const before = this.wccAttr(dir);
    if (target.length === 0) fail("INVAL", "empty symlink target");
    if (utf8Bytes(target) > SYMLINK_TARGET_BYTES_MAX) fail("NAMETOOLONG", "symlink target");
    if (this.existing(dir, name) !== undefined) fail("EXIST", name);
    const node = this.makeChild(cred, dir, name, "lnk", attrs, 0o777);
    node.target = target;
    return this.createResult(node, dir, before);
  }

  async readlink(_cred: Credentials, ref: NodeRef): Promise<{ target: string; attr: Attr }> {
    const node = this.node(ref);
    if (node.type !== "lnk") fail("INVAL", "not a symlink");
    return { target: node.target, attr: this.attr(node) };
  }

  async mknod(
    cred: Credentials,
    dirRef: NodeRef,
    name: string,
    type: SpecialType,
    attrs: CreateAttrs,
    rdev?: DeviceNumbers,
  ): Promise<CreateResult> {
    const dir = this.enterForNewEntry(cred, dirRef, name);
    const before = this.wccAttr(dir);
    const device = type === "chr" || type === "blk";
    if (device && cred.uid !== 0) fail("PERM", "device nodes need root");
    if (this.existing(dir, name) !== undefined) fail("EXIST", name);
    const node = this.makeChild(cred, dir, name, type, attrs, 0o644);
    if (device && rdev !== undefined) node.rdev = { major: rdev.major, minor: rdev.minor };
    return this.createResult(node, dir, before);
  }

  async remove(cred: Credentials, dirRef: NodeRef, name: string): Promise<Wcc> {
    const dir = this.enterForRemoval(cred, dirRef, name);
    const before = this.wccAttr(dir);
    const entry = dir.entries.get(name);
    if (entry === undefined) fail("NOENT", name);
    const node = this.inode(entry.ino);
    if (node.type === "dir") fail("ISDIR", name);
    this.checkSticky(cred, dir, node);
    this.unlinkEntry(dir, name);
    return { before, after: this.attr(dir) };
  }

  async rmdir(cred: Credentials, dirRef: NodeRef, name: string): Promise<Wcc> {
    const dir = this.enterForRemoval(cred, dirRef, name);
    const before = this.wccAttr(dir);
    const entry = dir.entries.get(name);
    if (entry === undefined) fail("NOENT", name);
    const node = this.inode(entry.ino);
    if (node.type !== "dir") fail("NOTDIR", name);
    this.checkSticky(cred, dir, node);
    if (node.entries.size > 0) fail("NOTEMPTY", name);
    this.unlinkEntry(dir, name);
    return { before, after: this.attr(dir) };
  }

  async rename(
    cred: Credentials,
    fromRef: NodeRef,
    fromName: string,
    toRef: NodeRef,
    toName: string,
  ): Promise<RenameResult> {
    const from = this.node(fromRef);
    const to = this.node(toRef);
    this.requireDir(from);
    this.requireDir(to);
    this.checkRemovableName(fromName);
    this.checkRemovableName(toName);
    this.requireChangeable(cred, from);
    this.requireChangeable(cred, to);
    const fromBefore = this.wccAttr(from);
    const toBefore = this.wccAttr(to);
    const sourceEntry = from.entries.get(fromName);
    if (sourceEntry === undefined) fail("NOENT", fromName);
    const source = this.inode(sourceEntry.ino);
    this.checkSticky(cred, from, source);
    if (source.type === "dir" && this.isSameOrBelow(to, source)) fail("INVAL", "directory into itself");
    const targetEntry = to.entries.get(toName);
    if (targetEntry !== undefined && targetEntry.ino === source.ino) {
      return {
        from: { before: fromBefore, after: this.attr(from) },
        to: { before: toBefore, after: this.attr(to) },
      };
    }
    if (targetEntry !== undefined) {
      const target = this.inode(targetEntry.ino);
      if (source.type === "dir" && target.type !== "dir") fail("NOTDIR", toName);
      if (source.type !== "dir" && target.type === "dir") fail("ISDIR", toName);
      if (target.type === "dir" && target.entries.size > 0) fail("NOTEMPTY", toName);
      this.checkSticky(cred, to, target);
      this.unlinkEntry(to, toName);
    }
    from.entries.delete(fromName);
    this.entriesChanged(from);
    this.addEntry(to, toName, source);
    if (source.type === "dir" && from !== to) {
      from.nlink--;
      to.nlink++;
      source.parent = to.ino;
    }
    this.touch(source);
    return {
      from: { before: fromBefore, after: this.attr(from) },
      to: { before: toBefore, after: this.attr(to) },
    };
  }

  async link(
    cred: Credentials,
    targetRef: NodeRef,
    dirRef: NodeRef,
    name: string,
  ): Promise<{ attr: Attr; dir: Wcc }> {
    const target = this.node(targetRef);
    const dir = this.node(dirRef);
    this.requireDir(dir);
    if (target.type === "dir") fail("ISDIR", "hard link to a directory");
    this.checkNewName(name);
    this.requireChangeable(cred, dir);
    const before = this.wccAttr(dir);
    if (this.existing(dir, name) !== undefined) fail("EXIST", name);
    if (target.nlink >= LINK_COUNT_MAX) fail("MLINK", "too many links");
    this.addEntry(dir, name, target);
    target.nlink++;
    this.touch(target);
    return { attr: this.attr(target), dir: { before, after: this.attr(dir) } };
  }

  async readdir(
    cred: Credentials,
    dirRef: NodeRef,
    cookie: number,
    verifier: bigint,
    maxEntries: number,
  ): Promise<ReadDirResult> {
    const dir = this.node(dirRef);
    this.requireDir(dir);
    if (!this.permits(cred, dir, 4)) fail("ACCES", "readdir needs read permission");
    // A zero verifier means the client keeps none: accepted with any cookie.
    if (cookie !== 0 && verifier !== 0n && verifier !== dir.verifier) fail("BAD_COOKIE", "directory changed");
    if (!(maxEntries >= 1)) fail("INVAL", "maxEntries < 1");
    const entries: DirEntry[] = [];
    let eof = true;
    for (const [name, entry] of dir.entries) {
      if (entry.cookie <= cookie) continue;
      if (entries.length >= maxEntries) {
        eof = false;
        break;
      }
      const node = this.inode(entry.ino);
      entries.push({ name, fileid: node.ino, cookie: entry.cookie, ref: this.ref(node), type: node.type });
    }
    return { entries, verifier: dir.verifier, eof, dirAttr: this.attr(dir) };
  }

  async fsstat(): Promise<FsStat> {
    const bytes = 2 ** 40;
    return {
      totalBytes: bytes,
      freeBytes: bytes,
      availBytes: bytes,
      totalFiles: 2 ** 32,
      freeFiles: 2 ** 32 - this.inodes.size,
      availFiles: 2 ** 32 - this.inodes.size,
    };
  }

  async commit(): Promise<void> {}

  async sync(): Promise<void> {}

  async unmount(): Promise<void> {}

  // ---- checks, in the contract's order ----

  /** Handle check: STALE for an object that does not exist (now) or a different incarnation. */
  private node(ref: NodeRef): ModelInode {
    const node = this.inodes.get(ref.ino);
    if (node === undefined || node.gen !== ref.gen) fail("STALE", `no object ${ref.ino}/${ref.gen}`);
    return node;
  }

  private requireDir(node: ModelInode): void {
    if (node.type !== "dir") fail("NOTDIR", `object ${node.ino} is not a directory`);
  }

  private requireRegular(node: ModelInode): void {
    if (node.type === "dir") fail("ISDIR", `object ${node.ino} is a directory`);
    if (node.type !== "reg") fail("INVAL", `object ${node.ino} is not a regular file`);
  }

  private checkName(name: string): void {
    if (utf8Bytes(name) > NAME_BYTES_MAX) fail("NAMETOOLONG", "name");
    if (name.length === 0 || name.includes("/") || name.includes("\0")) fail("INVAL", "bad name");
  }

  private checkNewName(name: string): void {
    this.checkName(name);
    if (name === "." || name === "..") fail("EXIST", name);
  }

  private checkRemovableName(name: string): void {
    this.checkName(name);
    if (name === "." || name === "..") fail("INVAL", name);
  }

  private requireChangeable(cred: Credentials, dir: ModelInode): void {
    if (!this.permits(cred, dir, 3)) fail("ACCES", "directory change needs write and search permission");
  }

  private enterForNewEntry(cred: Credentials, dirRef: NodeRef, name: string): ModelInode {
    const dir = this.node(dirRef);
    this.requireDir(dir);
    this.checkNewName(name);
    this.requireChangeable(cred, dir);
    return dir;
  }

  private enterForRemoval(cred: Credentials, dirRef: NodeRef, name: string): ModelInode {
    const dir = this.node(dirRef);
    this.requireDir(dir);
    this.checkRemovableName(name);
    this.requireChangeable(cred, dir);
    return dir;
  }

  private checkSticky(cred: Credentials, dir: ModelInode, entry: ModelInode): void {
    if ((dir.mode & 0o1000) === 0) return;
    if (cred.uid === 0 || cred.uid === entry.uid || cred.uid === dir.uid) return;
    fail("PERM", "sticky directory");
  }

  /**
   * `want` is a set of rwx bits (4 read, 2 write, 1 execute/search); every one of them must be granted.
   * Root gets read and write always, execute on directories and on objects with any x bit.
   */
  private permits(cred: Credentials, node: ModelInode, want: number): boolean {
    if (cred.uid === 0) {
      const execOk = node.type === "dir" || (node.mode & 0o111) !== 0;
      return (want & 1) === 0 || execOk;
    }
    let bits: number;
    if (cred.uid === node.uid) bits = (node.mode >> 6) & 7;
    else if (cred.gid === node.gid || cred.gids.includes(node.gid)) bits = (node.mode >> 3) & 7;
    else bits = node.mode & 7;
    return (bits & want) === want;
  }

  private isSameOrBelow(dir: ModelInode, ancestor: ModelInode): boolean {
    let current = dir;
    for (;;) {
      if (current.ino === ancestor.ino) return true;
      if (current.ino === ROOT_INO) return false;
      current = this.inode(current.parent);
    }
  }

  // ---- state changes ----

  private existing(dir: ModelInode, name: string): ModelInode | undefined {
    const entry = dir.entries.get(name);
    return entry === undefined ? undefined : this.inode(entry.ino);
  }

  private makeChild(
    cred: Credentials,
    dir: ModelInode,
    name: string,
    type: FileType,
    attrs: CreateAttrs,
    defaultMode: number,
  ): ModelInode {
    const root = cred.uid === 0;
    const setgidDir = (dir.mode & 0o2000) !== 0;
    const uid = root && attrs.uid !== undefined ? attrs.uid : cred.uid;
    let gid = setgidDir ? dir.gid : cred.gid;
    if (root && attrs.gid !== undefined) gid = attrs.gid;
    let mode = (attrs.mode ?? defaultMode) & 0o7777;
    if (type === "dir" && setgidDir) mode |= 0o2000;
    const node = this.newInode(this.nextIno++, type, mode, uid, gid);
    if (type === "dir") {
      node.nlink = 2;
      node.parent = dir.ino;
      dir.nlink++;
    }
    this.inodes.set(node.ino, node);
    this.addEntry(dir, name, node);
    return node;
  }

  private newInode(ino: number, type: FileType, mode: number, uid: number, gid: number): ModelInode {
    return {
      ino,
      gen: 1,
      type,
      mode,
      uid,
      gid,
      nlink: 1,
      size: 0,
      chunks: new Map(),
      mapped: new Set(),
      dataVersion: 0,
      target: "",
      rdev: { major: 0, minor: 0 },
      entries: new Map(),
      nextCookie: 1,
      verifier: this.nextVerifier++,
      parent: ROOT_INO,
      exclusiveVerifier: undefined,
      ctimeTick: this.tick++,
      change: 1,
    };
  }

  private addEntry(dir: ModelInode, name: string, node: ModelInode): void {
    dir.entries.set(name, { ino: node.ino, cookie: dir.nextCookie++ });
    this.entriesChanged(dir);
  }

  /** Removes an entry and drops the link it held; the object goes at zero links. */
  private unlinkEntry(dir: ModelInode, name: string): void {
    const entry = dir.entries.get(name);
    if (entry === undefined) throw new Error(`model: no entry ${name}`);
    dir.entries.delete(name);
    this.entriesChanged(dir);
    const node = this.inode(entry.ino);
    if (node.type === "dir") {
      dir.nlink--;
      this.inodes.delete(node.ino);
      return;
    }
    node.nlink--;
    this.touch(node);
    if (node.nlink === 0) this.inodes.delete(node.ino);
  }

  private entriesChanged(dir: ModelInode): void {
    dir.verifier = this.nextVerifier++;
    this.touch(dir);
  }

  private touch(node: ModelInode): void {
    node.ctimeTick = this.tick++;
    node.change++;
  }

  private resize(node: ModelInode, size: number): void {
    if (size < node.size) {
      const keptBlocks = Math.ceil(size / DATA_BLOCK_BYTES);
      for (const block of [...node.mapped]) if (block >= keptBlocks) node.mapped.delete(block);
      const lastChunk = Math.floor(size / MODEL_CHUNK_BYTES);
      for (const index of [...node.chunks.keys()]) {
        if (index > lastChunk) node.chunks.delete(index);
      }
      const partial = node.chunks.get(lastChunk);
      const keep = size - lastChunk * MODEL_CHUNK_BYTES;
      if (partial !== undefined) {
        if (keep === 0) node.chunks.delete(lastChunk);
        else {
          const trimmed = new Uint8Array(MODEL_CHUNK_BYTES);
          trimmed.set(partial.subarray(0, keep));
          node.chunks.set(lastChunk, trimmed);
        }
      }
    }
    if (size !== node.size) node.dataVersion++;
    node.size = size;
  }

  private writeBytes(node: ModelInode, offset: number, data: Uint8Array): void {
    const lastBlock = Math.floor((offset + data.length - 1) / DATA_BLOCK_BYTES);
    for (let block = Math.floor(offset / DATA_BLOCK_BYTES); block <= lastBlock; block++)
      node.mapped.add(block);
    let done = 0;
    while (done < data.length) {
      const position = offset + done;
      const index = Math.floor(position / MODEL_CHUNK_BYTES);
      const within = position - index * MODEL_CHUNK_BYTES;
      const length = Math.min(MODEL_CHUNK_BYTES - within, data.length - done);
      const chunk = new Uint8Array(MODEL_CHUNK_BYTES);
      const old = node.chunks.get(index);
      if (old !== undefined) chunk.set(old);
      chunk.set(data.subarray(done, done + length), within);
      node.chunks.set(index, chunk);
      done += length;
    }
  }

  private readBytes(node: ModelInode, offset: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const position = offset + done;
      const index = Math.floor(position / MODEL_CHUNK_BYTES);
      const within = position - index * MODEL_CHUNK_BYTES;
      const count = Math.min(MODEL_CHUNK_BYTES - within, length - done);
      const chunk = node.chunks.get(index);
      if (chunk !== undefined) out.set(chunk.subarray(within, within + count), done);
      done += count;
    }
    return out;
  }

  // ---- results ----

  private inode(ino: number): ModelInode {
    const node = this.inodes.get(ino);
    if (node === undefined) throw new Error(`model: dangling inode ${ino}`);
    return node;
  }

  private ref(node: ModelInode): NodeRef {
    return { ino: node.ino, gen: node.gen };
  }

  private ctime(node: ModelInode): Timespec {
    return { sec: 1_000_000 + Math.floor(node.ctimeTick / 1e9), nsec: node.ctimeTick % 1e9 };
  }

  private attr(node: ModelInode): Attr {
    const ctime = this.ctime(node);
    return {
      type: node.type,
      mode: node.mode,
      nlink: node.nlink,
      uid: node.uid,
      gid: node.gid,
      size: this.sizeOf(node),
      usedBytes: node.mapped.size * DATA_BLOCK_BYTES,
      rdev: node.rdev,
      fileid: node.ino,
      gen: node.gen,
      atime: ctime,
      mtime: ctime,
      ctime,
      change: node.change,
    };
  }

  private sizeOf(node: ModelInode): number {
    switch (node.type) {
      case "reg":
        return node.size;
      case "lnk":
        return utf8Bytes(node.target);
      case "dir":
        return 64 * (node.entries.size + 2);
      default:
        return 0;
    }
  }

  private wccAttr(node: ModelInode): { size: number; mtime: Timespec; ctime: Timespec } {
    const ctime = this.ctime(node);
    return { size: this.sizeOf(node), mtime: ctime, ctime };
  }

  private createResult(
    node: ModelInode,
    dir: ModelInode,
    before: { size: number; mtime: Timespec; ctime: Timespec },
  ): CreateResult {
    return { ref: this.ref(node), attr: this.attr(node), dir: { before, after: this.attr(dir) } };
  }
}
