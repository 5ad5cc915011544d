import assert from "node:assert/strict";
import type { Attr, Credentials, NodeRef, Volume } from "../fs/index.ts";
import { FsError, isFsError } from "../fs/index.ts";
import type { RpcCall } from "../rpc/types.ts";
import type { XdrReader, XdrWriter } from "../xdr/index.ts";
import type { ExportRule } from "./exports.ts";
import type { FileHandleCodec } from "./file-handle.ts";
import type { NfsProcName } from "./nfs3.ts";

/** What every NFS request of one vserver's volume works with. */
export interface NfsVolumeService {
  readonly vserverId: number;
  readonly volumeId: number;
  /** fattr3 fsid of the volume. */
  readonly fsid: bigint;
  readonly volume: Volume;
  readonly handles: FileHandleCodec;
  /** Changes whenever the volume is mounted by a new server instance (RFC 1813 WRITE verifier). */
  readonly writeVerifier: Uint8Array;
}

/**
 * A vserver's further volumes, beside its first (the export "/"): each is exported as "/NAME", and a
 * request is served by the volume its file handle names.
 */
export type NfsMoreVolumes = ReadonlyMap<string, NfsVolumeService>;

/**
 * The volume a call is for: the one its first argument's file handle names (every NFSv3 call but
 * NULL starts with one), else the first. A handle naming no volume here is then refused by
 * `NfsRequest.resolve` as BADHANDLE, as before.
 */
export function serviceForArgs(
  first: NfsVolumeService,
  more: NfsMoreVolumes | undefined,
  args: Uint8Array,
): NfsVolumeService {
  if (more === undefined || more.size === 0 || args.length < 4) return first;
  const length = new DataView(args.buffer, args.byteOffset, 4).getUint32(0);
  if (length > args.length - 4 || length > 64) return first;
  let volumeId: number;
  try {
    const target = first.handles.decode(args.subarray(4, 4 + length));
    if (target.vserverId !== first.vserverId) return first;
    volumeId = target.volumeId;
  } catch {
    return first;
  }
  for (const service of more.values()) if (service.volumeId === volumeId) return service;
  return first;
}

/** One decoded request: who asks (after squashing), under which rule, on which volume. */
export class NfsRequest {
  readonly service: NfsVolumeService;
  readonly call: RpcCall;
  readonly rule: ExportRule;
  readonly cred: Credentials;
  /** False for a client no export rule admits: its failure replies carry no attributes. */
  readonly admitted: boolean;
  /** What to do once the reply has been sent: hand a reused read buffer back (see `afterSent`). */
  sent: (() => void) | undefined;

  constructor(
    service: NfsVolumeService,
    call: RpcCall,
    rule: ExportRule,
    cred: Credentials,
    admitted: boolean,
  ) {
    this.service = service;
    this.call = call;
    this.rule = rule;
    this.cred = cred;
    this.admitted = admitted;
  }

  get volume(): Volume {
    return this.service.volume;
  }

  /** Runs `hook` once the reply's bytes are with the kernel, or the reply is given up. One per call. */
  afterSent(hook: () => void): void {
    assert(this.sent === undefined, "one after-sent hook per call");
    this.sent = hook;
  }

  /** Nothing this call keeps refers to its argument bytes any more: the RPC layer may reuse them. */
  releaseArgs(): void {
    this.call.releaseArgs?.();
  }

  get fsid(): bigint {
    return this.service.fsid;
  }

  /** The object a handle names; BADHANDLE unless it is this vserver's and this volume's. */
  resolve(handle: Uint8Array): NodeRef {
    const target = this.service.handles.decode(handle);
    if (target.vserverId !== this.service.vserverId || target.volumeId !== this.service.volumeId) {
      throw new FsError("BADHANDLE", "file handle belongs to another vserver or volume");
    }
    return target.ref;
  }

  handleOf(ref: NodeRef): Uint8Array {
    return this.service.handles.encode({
      vserverId: this.service.vserverId,
      volumeId: this.service.volumeId,
      ref,
    });
  }

  /** Attributes for a failure reply's post-op fields: whatever can be had, nothing if not. */
  async attrsIfAny(handle: Uint8Array): Promise<Attr | undefined> {
    if (!this.admitted) return undefined;
    try {
      return await this.volume.getattr(this.resolve(handle));
    } catch (error) {
      if (isFsError(error)) return undefined;
      throw error;
    }
  }
}

/**
 * One NFS procedure: its arguments, decode, handler and failure body, in one file under proc/.
 * `run` writes the status NFS3_OK and the success body; a FsError it throws becomes that error's
 * status followed by `failure`'s body.
 */
export interface NfsProcedure<Args> {
  readonly name: NfsProcName;
  /** Changes state: refused on read-only exports and answered from the duplicate request cache. */
  readonly mutating: boolean;
  /**
   * Changes the namespace or attributes (RFC 1813 wants those on stable storage before the reply):
   * on a `sync` export the reply waits for the group commit that covers it. WRITE says for itself.
   */
  readonly metadataChange: boolean;
  decode(r: XdrReader): Args;
  /** Returns extra chunks to send after the writer's bytes (READ data), or nothing. */
  run(req: NfsRequest, args: Args, w: XdrWriter): Promise<readonly Uint8Array[] | undefined>;
  failure(req: NfsRequest, args: Args, w: XdrWriter): Promise<void>;
}

/**
 * A procedure of any argument type, for the table. Sound because the table only ever passes a
 * procedure the value its own `decode` returned (methods are checked bivariantly, which allows it).
 */
export type AnyNfsProcedure = NfsProcedure<unknown>;
