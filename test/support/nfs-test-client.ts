import { RpcClient } from "../../src/rpc/client.ts";
import type { RpcReply } from "../../src/rpc/message.ts";
import type { Credential } from "../../src/rpc/types.ts";
import { type XdrReader, XdrWriter } from "../../src/xdr/index.ts";

export const NFS = { program: 100003, version: 3 } as const;
export const MOUNT = { program: 100005, version: 3 } as const;
export const ROOT_CRED: Credential = {
  flavor: "sys",
  sys: { stamp: 1, machineName: "test", uid: 0, gid: 0, gids: [] },
};

/** A reply's results, or a failure naming what came instead. */
export function resultsOf(reply: RpcReply): XdrReader {
  if (reply.kind !== "success") throw new Error(`expected SUCCESS, got ${reply.kind}`);
  return reply.results;
}

/** Skips a post_op_attr, returning the fattr3 size and fileid when present. */
export function readPostOpAttr(r: XdrReader): { size: bigint; fileid: bigint } | undefined {
  if (!r.bool()) return undefined;
  r.u32(); // type
  r.u32(); // mode
  r.u32(); // nlink
  r.u32(); // uid
  r.u32(); // gid
  const size = r.u64();
  r.u64(); // used
  r.u32(); // rdev major
  r.u32(); // rdev minor
  r.u64(); // fsid
  const fileid = r.u64();
  for (let i = 0; i < 6; i++) r.u32(); // atime, mtime, ctime
  return { size, fileid };
}

export function skipWcc(r: XdrReader): void {
  if (r.bool()) {
    r.u64();
    for (let i = 0; i < 4; i++) r.u32();
  }
  readPostOpAttr(r);
}

const args = (build: (w: XdrWriter) => void): Uint8Array => {
  const w = new XdrWriter();
  build(w);
  return w.bytes();
};

/** The few NFS and MOUNT calls the protocol tests need, over one connection. */
export class NfsTestClient {
  readonly rpc: RpcClient;
  credential: Credential = ROOT_CRED;

  private constructor(rpc: RpcClient) {
    this.rpc = rpc;
  }

  static async connect(host: string, port: number): Promise<NfsTestClient> {
    return new NfsTestClient(await RpcClient.connect(host, port, { timeoutMs: 20_000 }));
  }

  nfs(procedure: number, body: Uint8Array, xid?: number): Promise<RpcReply> {
    return this.rpc.call(NFS.program, NFS.version, procedure, body, {
      credential: this.credential,
      ...(xid === undefined ? {} : { xid }),
    });
  }

  async mount(path: string): Promise<Uint8Array> {
    const reply = await this.rpc.call(
      MOUNT.program,
      MOUNT.version,
      1,
      args((w) => w.string(path)),
      {
        credential: this.credential,
      },
    );
    const r = resultsOf(reply);
    const status = r.u32();
    if (status !== 0) throw new Error(`MNT ${path}: status ${status}`);
    return r.opaque(64).slice();
  }

  /** MOUNT DUMP: every (host, path) the server lists. */
  async dump(): Promise<{ host: string; path: string }[]> {
    const r = resultsOf(
      await this.rpc.call(MOUNT.program, MOUNT.version, 2, new Uint8Array(0), {
        credential: this.credential,
      }),
    );
    const out: { host: string; path: string }[] = [];
    while (r.bool()) out.push({ host: r.string(1024), path: r.string(1024) });
    return out;
  }

  /** CREATE guarded (with `mode`, if given): returns status and, on success, the new handle. */
  async create(
    dir: Uint8Array,
    name: string,
    xid?: number,
    mode?: number,
  ): Promise<{ status: number; handle?: Uint8Array }> {
    const r = resultsOf(
      await this.nfs(
        8,
        args((w) => writeSattr(w.opaque(dir).string(name).u32(1), mode)),
        xid,
      ),
    );
    const status = r.u32();
    if (status !== 0) return { status };
    if (!r.bool()) throw new Error("CREATE returned no handle");
    return { status, handle: r.opaque(64).slice() };
  }

  async remove(dir: Uint8Array, name: string, xid?: number): Promise<number> {
    return resultsOf(
      await this.nfs(
        12,
        args((w) => w.opaque(dir).string(name)),
        xid,
      ),
    ).u32();
  }

  async lookup(dir: Uint8Array, name: string): Promise<{ status: number; handle?: Uint8Array }> {
    const r = resultsOf(
      await this.nfs(
        3,
        args((w) => w.opaque(dir).string(name)),
      ),
    );
    const status = r.u32();
    return status === 0 ? { status, handle: r.opaque(64).slice() } : { status };
  }

  async getattrStatus(handle: Uint8Array): Promise<number> {
    return resultsOf(
      await this.nfs(
        1,
        args((w) => w.opaque(handle)),
      ),
    ).u32();
  }

  /** WRITE: status, and on success the verifier. */
  async write(
    file: Uint8Array,
    offset: number,
    data: Uint8Array,
    stable: number,
  ): Promise<{ status: number; verifier?: string; committed?: number }> {
    const r = resultsOf(
      await this.nfs(
        7,
        args((w) => w.opaque(file).u64(offset).u32(data.length).u32(stable).opaque(data)),
      ),
    );
    const status = r.u32();
    skipWcc(r);
    if (status !== 0) return { status };
    r.u32();
    const committed = r.u32();
    return { status, committed, verifier: Buffer.from(r.opaqueFixed(8)).toString("hex") };
  }

  async commit(file: Uint8Array): Promise<{ status: number; verifier?: string }> {
    const r = resultsOf(
      await this.nfs(
        21,
        args((w) => w.opaque(file).u64(0).u32(0)),
      ),
    );
    const status = r.u32();
    skipWcc(r);
    return status === 0 ? { status, verifier: Buffer.from(r.opaqueFixed(8)).toString("hex") } : { status };
  }

  async read(
    file: Uint8Array,
    offset: number,
    count: number,
  ): Promise<{ status: number; data?: Uint8Array; eof?: boolean }> {
    const r = resultsOf(
      await this.nfs(
        6,
        args((w) => w.opaque(file).u64(offset).u32(count)),
      ),
    );
    const status = r.u32();
    readPostOpAttr(r);
    if (status !== 0) return { status };
    r.u32();
    const eof = r.bool();
    return { status, eof, data: r.opaque(count).slice() };
  }

  /** READDIR: the reply's size in bytes with the decoded entries. */
  async readdir(
    dir: Uint8Array,
    cookie: bigint,
    verifier: bigint,
    count: number,
  ): Promise<{
    status: number;
    bytes: number;
    verifier?: bigint;
    entries?: Array<{ name: string; cookie: bigint }>;
    eof?: boolean;
  }> {
    const reply = await this.nfs(
      16,
      args((w) => w.opaque(dir).u64(cookie).u64(verifier).u32(count)),
    );
    const r = resultsOf(reply);
    const bytes = r.remaining;
    const status = r.u32();
    readPostOpAttr(r);
    if (status !== 0) return { status, bytes };
    const cookieVerifier = r.u64();
    const entries: Array<{ name: string; cookie: bigint }> = [];
    while (r.bool()) {
      r.u64();
      const name = r.string(1024);
      entries.push({ name, cookie: r.u64() });
    }
    return { status, bytes, verifier: cookieVerifier, entries, eof: r.bool() };
  }

  /** READDIRPLUS: the reply's size, the entries' own bytes (what dircount counts), and the entries. */
  async readdirplus(
    dir: Uint8Array,
    cookie: bigint,
    verifier: bigint,
    dircount: number,
    maxcount: number,
  ): Promise<{
    status: number;
    bytes: number;
    entries: Array<{ name: string; cookie: bigint; hasHandle: boolean }>;
    eof: boolean;
  }> {
    const reply = await this.nfs(
      17,
      args((w) => w.opaque(dir).u64(cookie).u64(verifier).u32(dircount).u32(maxcount)),
    );
    const r = resultsOf(reply);
    const bytes = r.remaining;
    const status = r.u32();
    readPostOpAttr(r);
    const entries: Array<{ name: string; cookie: bigint; hasHandle: boolean }> = [];
    if (status !== 0) return { status, bytes, entries, eof: false };
    r.u64();
    while (r.bool()) {
      r.u64();
      const name = r.string(1024);
      const cookie = r.u64();
      readPostOpAttr(r);
      const hasHandle = r.bool();
      if (hasHandle) r.opaque(64);
      entries.push({ name, cookie, hasHandle });
    }
    return { status, bytes, entries, eof: r.bool() };
  }

  /** MKDIR (mode 0755): status and, on success, the new handle. */
  async mkdir(dir: Uint8Array, name: string): Promise<{ status: number; handle?: Uint8Array }> {
    const r = resultsOf(
      await this.nfs(
        9,
        args((w) => writeSattr(w.opaque(dir).string(name), 0o755)),
      ),
    );
    const status = r.u32();
    if (status !== 0) return { status };
    if (!r.bool()) throw new Error("MKDIR returned no handle");
    return { status, handle: r.opaque(64).slice() };
  }

  async symlink(dir: Uint8Array, name: string, target: string): Promise<number> {
    return resultsOf(
      await this.nfs(
        10,
        args((w) => writeSattr(w.opaque(dir).string(name), undefined).string(target)),
      ),
    ).u32();
  }

  async rmdir(dir: Uint8Array, name: string): Promise<number> {
    return resultsOf(
      await this.nfs(
        13,
        args((w) => w.opaque(dir).string(name)),
      ),
    ).u32();
  }

  async rename(fromDir: Uint8Array, from: string, toDir: Uint8Array, to: string): Promise<number> {
    return resultsOf(
      await this.nfs(
        14,
        args((w) => w.opaque(fromDir).string(from).opaque(toDir).string(to)),
      ),
    ).u32();
  }

  async link(file: Uint8Array, dir: Uint8Array, name: string): Promise<number> {
    return resultsOf(
      await this.nfs(
        15,
        args((w) => w.opaque(file).opaque(dir).string(name)),
      ),
    ).u32();
  }

  /** SETATTR of the mode alone, unguarded. */
  async chmod(handle: Uint8Array, mode: number): Promise<number> {
    return resultsOf(
      await this.nfs(
        2,
        args((w) => writeSattr(w.opaque(handle), mode).bool(false)),
      ),
    ).u32();
  }

  close(): Promise<void> {
    return this.rpc.close();
  }
}

/** A sattr3 that sets the mode (when given) and nothing else. */
function writeSattr(w: XdrWriter, mode: number | undefined): XdrWriter {
  if (mode === undefined) w.bool(false);
  else w.bool(true).u32(mode);
  return w.bool(false).bool(false).bool(false).u32(0).u32(0);
}
