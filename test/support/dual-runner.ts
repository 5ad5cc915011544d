/**
 * Runs each op on the reference model and on a real volume, and fails, with the op and both answers, at
 * the first difference: a different error code, or a different observable result after a success.
 */
import assert from "node:assert/strict";
import type {
  Attr,
  CreateHow,
  FileType,
  FsErrorCode,
  NodeRef,
  ReadDirResult,
  SetAttrRequest,
  Volume,
} from "../../src/fs/index.ts";
import { FsError } from "../../src/fs/index.ts";
import {
  describeOp,
  type Op,
  type Pick,
  patternBytes,
  ROOT,
  stabilityAtLeast,
  USERS,
  verifierBytes,
} from "./fs-ops.ts";
import { MODEL_CHUNK_BYTES, type ModelVolume } from "./model-volume.ts";

export interface KnownObject {
  /** The model's handle. */
  readonly m: NodeRef;
  /** The real volume's handle. */
  readonly r: NodeRef;
  readonly type: FileType;
}

export interface OpOutcome {
  /** "ok" or the error code both sides agreed on. */
  readonly code: FsErrorCode | "ok";
  /** The op made everything before it durable (a commit, or a write that reached data-sync or better). */
  readonly durable: boolean;
}

type Settled<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly code: FsErrorCode; readonly error: FsError };

async function settle<T>(side: string, run: () => Promise<T>): Promise<Settled<T>> {
  try {
    return { ok: true, value: await run() };
  } catch (error) {
    if (error instanceof FsError) return { ok: false, code: error.code, error };
    throw new Error(`${side} threw something other than an FsError`, { cause: error });
  }
}

interface Cursor {
  readonly dirIndex: number;
  readonly m: { cookie: number; verifier: bigint };
  readonly r: { cookie: number; verifier: bigint };
}

/** Full-file reads up to this size when comparing trees; beyond, chunks the model says hold data. */
const WHOLE_READ_BYTES_MAX = 1024 * 1024;
const TREE_PAGE_ENTRIES = 16;

export class DualRunner {
  readonly model: ModelVolume;
  real: Volume;
  readonly known: KnownObject[];
  readonly #remount: (() => Promise<Volume>) | undefined;
  readonly #realInoByModel = new Map<number, number>();
  readonly #modelInoByReal = new Map<number, number>();
  readonly #knownByModelIno = new Map<number, number>();
  #cursor: Cursor | undefined;
  /**
   * For fault injection: an IO error from the volume is thrown as is (the op's effect is then unknown)
   * instead of counting as a difference from the model.
   */
  tolerateIo = false;
  /** Context for failure messages: the op being run. */
  #where = "";

  /** `remount` unmounts nothing itself: the runner unmounts, then calls it for a fresh mount. */
  constructor(model: ModelVolume, real: Volume, remount?: () => Promise<Volume>) {
    this.model = model;
    this.real = real;
    this.#remount = remount;
    this.known = [];
    this.#learn(model.rootRef, real.rootRef, "dir");
  }

  /**
   * Learns the pairing of every object reachable from the root by walking both trees: for a runner over
   * a model and a volume that are already populated (after a crash, say).
   */
  async learnTrees(): Promise<void> {
    this.#where = "learning the trees";
    await this.#compareDir(this.model.rootRef, this.real.rootRef, "/", new Set());
  }

  async run(op: Op, index: number): Promise<OpOutcome> {
    this.#where = `op #${index} ${describeOp(op)}`;
    switch (op.kind) {
      case "create":
        return this.#create(op);
      case "mkdir":
        return this.#made(
          op.who,
          op.dir,
          (v, c, d) => v.mkdir(c, d, op.name, op.mode === undefined ? {} : { mode: op.mode }),
          "dir",
        );
      case "symlink":
        return this.#made(op.who, op.dir, (v, c, d) => v.symlink(c, d, op.name, op.target, {}), "lnk");
      case "mknod": {
        const rdev =
          op.type === "chr" || op.type === "blk" ? { major: op.major, minor: op.minor } : undefined;
        return this.#made(op.who, op.dir, (v, c, d) => v.mknod(c, d, op.name, op.type, {}, rdev), op.type);
      }
      case "write":
        return this.#write(op);
      case "read":
        return this.#read(op);
      case "setattr":
        return this.#setattr(op);
      case "remove":
      case "rmdir":
        return this.#removal(op);
      case "rename":
        return this.#rename(op);
      case "link":
        return this.#link(op);
      case "readdir":
        return this.#readdirAll(op.who, op.dir, op.maxEntries);
      case "readdirStart":
        return this.#readdirStart(op.who, op.dir, op.maxEntries);
      case "readdirResume":
        return this.#readdirResume(op.who, op.maxEntries, op.zeroVerifier);
      case "lookup":
        return this.#lookup(op);
      case "getattr": {
        const obj = this.#pick(op.obj);
        const result = await this.#both(
          (v, s) => v.getattr(s(obj)),
          (m, r) => this.#compareAttr("getattr", m, r),
        );
        return { code: result, durable: false };
      }
      case "readlink": {
        const obj = this.#pick(op.obj);
        const cred = USERS[op.who];
        const result = await this.#both(
          (v, s) => v.readlink(cred, s(obj)),
          (m, r) => {
            assert.equal(r.target, m.target, `${this.#where}: symlink target`);
            this.#compareAttr("readlink attr", m.attr, r.attr);
          },
        );
        return { code: result, durable: false };
      }
      case "populate":
        return this.#populate(op);
      case "commit":
        await this.real.commit();
        return { code: "ok", durable: true };
      case "remount":
        await this.remount();
        return { code: "ok", durable: true };
      case "check":
        await this.compareTrees();
        return { code: "ok", durable: false };
    }
  }

  /** Unmounts the real volume, mounts it again, and compares the whole tree. */
  async remount(): Promise<void> {
    assert.ok(this.#remount !== undefined, "this runner cannot remount");
    await this.real.unmount();
    this.real = await this.#remount();
    this.#cursor = undefined;
    assert.deepEqual(
      this.real.rootRef,
      this.known[0]?.r,
      `${this.#where}: root handle changed across a remount`,
    );
    await this.compareTrees();
  }

  /** Walks both trees from the root and compares every directory listing, attribute and byte read. */
  async compareTrees(): Promise<void> {
    const where = this.#where;
    this.#where = `${where} (tree comparison)`;
    const [m, r] = [await this.model.getattr(this.model.rootRef), await this.real.getattr(this.real.rootRef)];
    this.#compareAttr("root", m, r);
    const seen = new Set<number>([this.model.rootRef.ino]);
    await this.#compareDir(this.model.rootRef, this.real.rootRef, "/", seen);
    assert.equal(
      seen.size,
      this.model.objectCount,
      `${this.#where}: model has unreachable objects (model bug)`,
    );
    this.#where = where;
  }

  // ---- plumbing ----

  #learn(m: NodeRef, r: NodeRef, type: FileType): void {
    this.#pairInos(m.ino, r.ino, "handle");
    if (this.#knownByModelIno.has(m.ino)) {
      const known = this.known[this.#knownByModelIno.get(m.ino)!]!;
      assert.deepEqual(r, known.r, `${this.#where}: object ${m.ino} (model) changed handle`);
      return;
    }
    this.#knownByModelIno.set(m.ino, this.known.length);
    this.known.push({ m, r, type });
  }

  #pairInos(modelIno: number, realIno: number, what: string): void {
    const realKnown = this.#realInoByModel.get(modelIno);
    const modelKnown = this.#modelInoByReal.get(realIno);
    if (realKnown === undefined && modelKnown === undefined) {
      this.#realInoByModel.set(modelIno, realIno);
      this.#modelInoByReal.set(realIno, modelIno);
      return;
    }
    assert.equal(
      realKnown,
      realIno,
      `${this.#where}: ${what}: model object ${modelIno} paired with two inodes`,
    );
    assert.equal(
      modelKnown,
      modelIno,
      `${this.#where}: ${what}: inode ${realIno} stands for two model objects`,
    );
  }

  #pickIndex(pick: Pick): number {
    const pool: number[] = [];
    for (let i = 0; i < this.known.length; i++) {
      if (pick.pool === "any" || this.known[i]!.type === pick.pool) pool.push(i);
    }
    if (pool.length === 0) return pick.index % this.known.length;
    return pool[pick.index % pool.length]!;
  }

  #pick(pick: Pick): KnownObject {
    return this.known[this.#pickIndex(pick)]!;
  }

  /**
   * Runs `call` on both sides (`side` maps a known object to that side's handle) and requires the same
   * outcome; after a success on both, `compare` checks the results.
   */
  async #both<T>(
    call: (volume: Volume, side: (obj: KnownObject) => NodeRef) => Promise<T>,
    compare: (m: T, r: T) => void,
  ): Promise<FsErrorCode | "ok"> {
    const m = await settle("the model", () => call(this.model, (o) => o.m));
    const r = await settle(`the volume, at ${this.#where},`, () => call(this.real, (o) => o.r));
    if (!r.ok && r.code === "IO" && this.tolerateIo) throw r.error;
    const expected = m.ok ? "success" : m.code;
    const actual = r.ok ? "success" : r.code;
    assert.equal(actual, expected, `${this.#where}: expected ${expected} (model), the volume gave ${actual}`);
    if (m.ok && r.ok) {
      compare(m.value, r.value);
      return "ok";
    }
    return m.ok ? "ok" : m.code;
  }

  #compareAttr(what: string, m: Attr, r: Attr): void {
    const where = `${this.#where}: ${what}`;
    assert.equal(r.type, m.type, `${where}: type`);
    assert.equal(r.mode.toString(8), m.mode.toString(8), `${where}: mode (octal)`);
    assert.equal(r.nlink, m.nlink, `${where}: nlink`);
    assert.equal(r.uid, m.uid, `${where}: uid`);
    assert.equal(r.gid, m.gid, `${where}: gid`);
    assert.equal(r.size, m.size, `${where}: size`);
    assert.equal(r.usedBytes, m.usedBytes, `${where}: usedBytes`);
    if (m.type === "chr" || m.type === "blk") assert.deepEqual(r.rdev, m.rdev, `${where}: rdev`);
    this.#pairInos(m.fileid, r.fileid, `${what} fileid`);
  }

  // ---- ops ----

  async #create(op: Extract<Op, { kind: "create" }>): Promise<OpOutcome> {
    let how: CreateHow;
    if (op.how === "exclusive") how = { kind: "exclusive", verifier: verifierBytes(op.verifier) };
    else {
      const attrs = {
        ...(op.mode === undefined ? {} : { mode: op.mode }),
        ...(op.size === undefined ? {} : { size: op.size }),
      };
      how = { kind: op.how, attrs };
    }
    return this.#made(op.who, op.dir, (v, c, d) => v.create(c, d, op.name, how), "reg");
  }

  async #made(
    who: 0 | 1 | 2,
    dirPick: Pick,
    call: (
      volume: Volume,
      cred: (typeof USERS)[number],
      dir: NodeRef,
    ) => Promise<{ ref: NodeRef; attr: Attr; dir: { after: Attr } }>,
    type: FileType,
  ): Promise<OpOutcome> {
    const dir = this.#pick(dirPick);
    const code = await this.#both(
      (v, s) => call(v, USERS[who], s(dir)),
      (m, r) => {
        assert.equal(r.attr.fileid, r.ref.ino, `${this.#where}: fileid is not the handle's inode`);
        this.#compareAttr("new object", m.attr, r.attr);
        this.#compareAttr("directory after", m.dir.after, r.dir.after);
        this.#learn(m.ref, r.ref, type);
      },
    );
    return { code, durable: false };
  }

  async #populate(op: Extract<Op, { kind: "populate" }>): Promise<OpOutcome> {
    const where = this.#where;
    let first: FsErrorCode | "ok" = "ok";
    for (let i = 0; i < op.count; i++) {
      const name = `p${i}`;
      this.#where = `${where}, create ${name}`;
      const created = await this.#create({
        kind: "create",
        who: 0,
        dir: op.dir,
        name,
        how: "guarded",
        verifier: 0,
      });
      if (created.code !== "ok") {
        if (first === "ok") first = created.code;
        continue;
      }
      this.#where = `${where}, write ${name}`;
      const file: Pick = { pool: "any", index: this.known.length - 1 };
      const length = (op.seed + i * 977) % 3000;
      const write = { kind: "write", who: 0, file, offset: i * 100, length, seed: op.seed + i } as const;
      await this.#write({ ...write, stability: "unstable" });
    }
    this.#where = where;
    return { code: first, durable: false };
  }

  async #write(op: Extract<Op, { kind: "write" }>): Promise<OpOutcome> {
    const file = this.#pick(op.file);
    const data = patternBytes(op.seed, op.length);
    let durable = false;
    const code = await this.#both(
      (v, s) => v.write(USERS[op.who], s(file), op.offset, data, op.stability),
      (m, r) => {
        assert.equal(r.count, m.count, `${this.#where}: bytes written`);
        assert.ok(
          stabilityAtLeast(r.committed, op.stability),
          `${this.#where}: asked ${op.stability}, committed only ${r.committed}`,
        );
        durable = r.committed !== "unstable";
        this.#compareAttr("attributes after write", m.wcc.after, r.wcc.after);
      },
    );
    return { code, durable };
  }

  async #read(op: Extract<Op, { kind: "read" }>): Promise<OpOutcome> {
    const file = this.#pick(op.file);
    const code = await this.#both(
      (v, s) => v.read(USERS[op.who], s(file), op.offset, op.count),
      (m, r) => {
        this.#compareBytes(`read ${op.offset}+${op.count}`, m.data, r.data);
        assert.equal(r.eof, m.eof, `${this.#where}: eof`);
        this.#compareAttr("attributes after read", m.attr, r.attr);
      },
    );
    return { code, durable: false };
  }

  async #setattr(op: Extract<Op, { kind: "setattr" }>): Promise<OpOutcome> {
    const obj = this.#pick(op.obj);
    const cred = USERS[op.who];
    const time = op.time === "explicit" ? { sec: 1_600_000_000, nsec: 42 } : op.time;
    const request: SetAttrRequest = {
      ...(op.mode === undefined ? {} : { mode: op.mode }),
      ...(op.uid === undefined ? {} : { uid: op.uid }),
      ...(op.gid === undefined ? {} : { gid: op.gid }),
      ...(op.size === undefined ? {} : { size: op.size }),
      ...(time === undefined ? {} : { mtime: time }),
    };
    const code = await this.#both(
      async (v, s) => {
        const ref = s(obj);
        if (op.guard === "none") return v.setattr(cred, ref, request);
        if (op.guard === "stale") return v.setattr(cred, ref, request, { sec: 3, nsec: 3 });
        const { ctime } = await v.getattr(ref);
        return v.setattr(cred, ref, request, ctime);
      },
      (m, r) => this.#compareAttr("attributes after setattr", m.after, r.after),
    );
    return { code, durable: false };
  }

  async #removal(op: Extract<Op, { kind: "remove" | "rmdir" }>): Promise<OpOutcome> {
    const dir = this.#pick(op.dir);
    const cred = USERS[op.who];
    const code = await this.#both(
      (v, s) => (op.kind === "remove" ? v.remove(cred, s(dir), op.name) : v.rmdir(cred, s(dir), op.name)),
      (m, r) => this.#compareAttr("directory after", m.after, r.after),
    );
    return { code, durable: false };
  }

  async #rename(op: Extract<Op, { kind: "rename" }>): Promise<OpOutcome> {
    const from = this.#pick(op.fromDir);
    const to = this.#pick(op.toDir);
    const code = await this.#both(
      (v, s) => v.rename(USERS[op.who], s(from), op.fromName, s(to), op.toName),
      (m, r) => {
        this.#compareAttr("source directory after", m.from.after, r.from.after);
        this.#compareAttr("target directory after", m.to.after, r.to.after);
      },
    );
    return { code, durable: false };
  }

  async #link(op: Extract<Op, { kind: "link" }>): Promise<OpOutcome> {
    const file = this.#pick(op.file);
    const dir = this.#pick(op.dir);
    const code = await this.#both(
      (v, s) => v.link(USERS[op.who], s(file), s(dir), op.name),
      (m, r) => {
        this.#compareAttr("linked object", m.attr, r.attr);
        this.#compareAttr("directory after", m.dir.after, r.dir.after);
      },
    );
    return { code, durable: false };
  }

  async #lookup(op: Extract<Op, { kind: "lookup" }>): Promise<OpOutcome> {
    const dir = this.#pick(op.dir);
    const code = await this.#both(
      (v, s) => v.lookup(USERS[op.who], s(dir), op.name),
      (m, r) => {
        this.#compareAttr("found object", m.attr, r.attr);
        this.#compareAttr("directory", m.dirAttr, r.dirAttr);
        this.#learn(m.ref, r.ref, m.attr.type);
      },
    );
    return { code, durable: false };
  }

  #comparePage(m: ReadDirResult, r: ReadDirResult, maxEntries: number): void {
    assert.ok(r.entries.length <= maxEntries, `${this.#where}: page of ${r.entries.length} > ${maxEntries}`);
    const names = (page: ReadDirResult) => page.entries.map((e) => `${e.name}:${e.type}`);
    assert.deepEqual(names(r), names(m), `${this.#where}: directory entries (name:type, in order)`);
    assert.equal(r.eof, m.eof, `${this.#where}: readdir eof`);
    for (let i = 0; i < m.entries.length; i++) {
      const me = m.entries[i]!;
      const re = r.entries[i]!;
      assert.notEqual(re.cookie, 0, `${this.#where}: cookie 0 for ${re.name}`);
      assert.equal(re.fileid, re.ref.ino, `${this.#where}: fileid of ${re.name} is not its inode`);
      this.#learn(me.ref, re.ref, me.type);
    }
    this.#compareAttr("directory", m.dirAttr, r.dirAttr);
  }

  /** Reads a whole directory in pages on both sides; both must agree page by page. */
  async #readdirAll(who: 0 | 1 | 2, dirPick: Pick, maxEntries: number): Promise<OpOutcome> {
    const dir = this.#pick(dirPick);
    const cred = USERS[who];
    const state = { m: { cookie: 0, verifier: 0n }, r: { cookie: 0, verifier: 0n } };
    for (let page = 0; ; page++) {
      let eof = true;
      const code = await this.#both(
        (v, s) => {
          const at = v === this.model ? state.m : state.r;
          return v.readdir(cred, s(dir), at.cookie, at.verifier, maxEntries);
        },
        (m, r) => {
          this.#comparePage(m, r, maxEntries);
          eof = r.eof;
          state.m = { cookie: m.entries.at(-1)?.cookie ?? state.m.cookie, verifier: m.verifier };
          state.r = { cookie: r.entries.at(-1)?.cookie ?? state.r.cookie, verifier: r.verifier };
        },
      );
      if (code !== "ok") return { code, durable: false };
      if (eof) return { code, durable: false };
      assert.ok(page < 100_000, `${this.#where}: readdir never reaches eof`);
    }
  }

  async #readdirStart(who: 0 | 1 | 2, dirPick: Pick, maxEntries: number): Promise<OpOutcome> {
    const dirIndex = this.#pickIndex(dirPick);
    const dir = this.known[dirIndex]!;
    this.#cursor = undefined;
    const code = await this.#both(
      (v, s) => v.readdir(USERS[who], s(dir), 0, 0n, maxEntries),
      (m, r) => {
        this.#comparePage(m, r, maxEntries);
        const mLast = m.entries.at(-1);
        const rLast = r.entries.at(-1);
        if (r.eof || mLast === undefined || rLast === undefined) return;
        this.#cursor = {
          dirIndex,
          m: { cookie: mLast.cookie, verifier: m.verifier },
          r: { cookie: rLast.cookie, verifier: r.verifier },
        };
      },
    );
    return { code, durable: false };
  }

  async #readdirResume(who: 0 | 1 | 2, maxEntries: number, zeroVerifier: boolean): Promise<OpOutcome> {
    const cursor = this.#cursor;
    if (cursor === undefined) return { code: "ok", durable: false };
    const dir = this.known[cursor.dirIndex]!;
    this.#cursor = undefined;
    const code = await this.#both(
      (v, s) => {
        const at = v === this.model ? cursor.m : cursor.r;
        return v.readdir(USERS[who], s(dir), at.cookie, zeroVerifier ? 0n : at.verifier, maxEntries);
      },
      (m, r) => {
        this.#comparePage(m, r, maxEntries);
        const mLast = m.entries.at(-1);
        const rLast = r.entries.at(-1);
        if (r.eof || mLast === undefined || rLast === undefined) return;
        this.#cursor = {
          dirIndex: cursor.dirIndex,
          m: { cookie: mLast.cookie, verifier: m.verifier },
          r: { cookie: rLast.cookie, verifier: r.verifier },
        };
      },
    );
    return { code, durable: false };
  }

  // ---- whole-tree comparison ----

  async #listAll(volume: Volume, dir: NodeRef): Promise<ReadDirResult["entries"]> {
    const all: ReadDirResult["entries"][number][] = [];
    let cookie = 0;
    let verifier = 0n;
    for (;;) {
      const page = await volume.readdir(ROOT, dir, cookie, verifier, TREE_PAGE_ENTRIES);
      all.push(...page.entries);
      if (page.eof) return all;
      const last = page.entries.at(-1);
      assert.ok(last !== undefined, `${this.#where}: empty readdir page without eof`);
      cookie = last.cookie;
      verifier = page.verifier;
    }
  }

  async #compareDir(mDir: NodeRef, rDir: NodeRef, path: string, seen: Set<number>): Promise<void> {
    const mEntries = await this.#listAll(this.model, mDir);
    const rEntries = await this.#listAll(this.real, rDir);
    const names = (list: ReadDirResult["entries"]) => list.map((e) => `${e.name}:${e.type}`);
    assert.deepEqual(names(rEntries), names(mEntries), `${this.#where}: entries of ${path} (in order)`);
    for (let i = 0; i < mEntries.length; i++) {
      const me = mEntries[i]!;
      const re = rEntries[i]!;
      const childPath = `${path}${me.name}`;
      const m = await this.model.lookup(ROOT, mDir, me.name);
      const r = await this.real.lookup(ROOT, rDir, re.name);
      assert.deepEqual(
        r.ref,
        re.ref,
        `${this.#where}: ${childPath}: readdir and lookup disagree on the handle`,
      );
      this.#compareAttr(childPath, m.attr, r.attr);
      this.#learn(m.ref, r.ref, m.attr.type);
      if (seen.has(m.ref.ino)) continue;
      seen.add(m.ref.ino);
      if (m.attr.type === "dir") {
        const dotdot = await this.real.lookup(ROOT, r.ref, "..");
        assert.deepEqual(dotdot.ref, rDir, `${this.#where}: ${childPath}/.. is not its parent`);
        await this.#compareDir(m.ref, r.ref, `${childPath}/`, seen);
      } else if (m.attr.type === "lnk") {
        const [mt, rt] = [await this.model.readlink(ROOT, m.ref), await this.real.readlink(ROOT, r.ref)];
        assert.equal(rt.target, mt.target, `${this.#where}: ${childPath}: symlink target`);
      } else if (m.attr.type === "reg") {
        await this.#compareContent(m.ref, r.ref, m.attr.size, childPath);
      }
    }
  }

  async #compareContent(mRef: NodeRef, rRef: NodeRef, size: number, path: string): Promise<void> {
    const ranges: Array<[number, number]> = [];
    if (size <= WHOLE_READ_BYTES_MAX) ranges.push([0, size + 1]);
    else {
      const starts = new Set([0, Math.floor(size / 2 / MODEL_CHUNK_BYTES) * MODEL_CHUNK_BYTES, size - 1000]);
      for (const start of this.model.dataChunkOffsets(mRef)) starts.add(start);
      for (const start of starts) ranges.push([start, MODEL_CHUNK_BYTES + 7]);
    }
    for (const [offset, count] of ranges) {
      const m = await this.model.read(ROOT, mRef, offset, count);
      const r = await this.real.read(ROOT, rRef, offset, count);
      this.#compareBytes(`${path} bytes ${offset}+${count}`, m.data, r.data);
      assert.equal(r.eof, m.eof, `${this.#where}: ${path} eof at ${offset}+${count}`);
    }
  }

  #compareBytes(what: string, m: Uint8Array, r: Uint8Array): void {
    assert.equal(r.length, m.length, `${this.#where}: ${what}: length`);
    const equal = Buffer.from(r.buffer, r.byteOffset, r.byteLength).equals(
      Buffer.from(m.buffer, m.byteOffset, m.byteLength),
    );
    if (equal) return;
    let at = 0;
    while (r[at] === m[at]) at++;
    assert.fail(`${this.#where}: ${what}: bytes differ first at +${at} (model ${m[at]}, volume ${r[at]})`);
  }
}
