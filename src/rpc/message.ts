import { assert, assertionFailed, unreachable } from "../util/assert.ts";
import { XdrError, XdrReader, XdrWriter } from "../xdr/index.ts";
import { FRAGMENT_HEADER_BYTES, writeFragmentHeader } from "./record-marking.ts";
import {
  AcceptStat,
  AUTH_SYS_GIDS_MAX,
  AUTH_SYS_MACHINE_NAME_BYTES_MAX,
  AuthFlavor,
  AuthStat,
  type AuthStatCode,
  type AuthSys,
  type Credential,
  RPC_AUTH_BODY_BYTES_MAX,
  RPC_VERSION,
  type RpcCall,
  type RpcOutcome,
} from "./types.ts";

/** msg_type, reply_stat and reject_stat (RFC 5531 section 9). */
export const MsgType = { CALL: 0, REPLY: 1 } as const;
export const ReplyStat = { MSG_ACCEPTED: 0, MSG_DENIED: 1 } as const;
export const RejectStat = { RPC_MISMATCH: 0, AUTH_ERROR: 1 } as const;

/** An opaque_auth as it travels: any flavor, a body of at most RPC_AUTH_BODY_BYTES_MAX bytes. */
export interface OpaqueAuth {
  readonly flavor: number;
  readonly body: Uint8Array;
}

const textEncoder = new TextEncoder();
const AUTH_NONE: OpaqueAuth = { flavor: AuthFlavor.NONE, body: new Uint8Array(0) };
const AUTH_STATS: readonly AuthStatCode[] = Object.values(AuthStat);
const NO_BODY: readonly Uint8Array[] = [];
/** Largest reply header: xid, msg_type, reply_stat, verifier (empty), accept_stat, low, high. */
const REPLY_HEADER_BYTES_MAX = 32;

/** What decoding a record as a call gave: a call to dispatch, an answer to send at once, or neither. */
export type DecodedCall =
  /** A call to dispatch; `args` is positioned at the procedure's arguments. */
  | ({ readonly kind: "call" } & Omit<RpcCall, "client" | "connectionId">)
  /** rpcvers was not 2: answer MSG_DENIED RPC_MISMATCH(2, 2). */
  | { readonly kind: "rpc-mismatch"; readonly xid: number; readonly rpcVersion: number }
  /** The credential or verifier is malformed or of a flavor we do not take: answer AUTH_ERROR. */
  | {
      readonly kind: "auth-error";
      readonly xid: number;
      readonly stat: AuthStatCode;
      readonly reason: string;
    }
  /** Not a call header at all (no xid, a REPLY, cut short): nothing to answer; close the connection. */
  | { readonly kind: "unparseable"; readonly reason: string };

/**
 * Decodes a record as a call (RFC 5531 section 9). The checks run in the order the RFC's answers
 * need: rpcvers first (RPC_MISMATCH needs only the xid), then the header, then authentication, so
 * that dispatch (PROG_UNAVAIL and the rest) happens only for an authenticated call.
 */
export function decodeCall(record: Uint8Array): DecodedCall {
  const reader = new XdrReader(record);
  if (reader.remaining < 8) return { kind: "unparseable", reason: `record of ${record.length} bytes` };
  const xid = reader.u32();
  const msgType = reader.u32();
  if (msgType !== MsgType.CALL) return { kind: "unparseable", reason: `msg_type ${msgType} is not CALL` };
  if (reader.remaining < 4) return { kind: "unparseable", reason: "no rpcvers" };
  const rpcVersion = reader.u32();
  if (rpcVersion !== RPC_VERSION) return { kind: "rpc-mismatch", xid, rpcVersion };
  if (reader.remaining < 12) return { kind: "unparseable", reason: "call header cut short" };
  const program = reader.u32();
  const version = reader.u32();
  const procedure = reader.u32();
  const credentialAuth = readOpaqueAuth(reader);
  if (credentialAuth instanceof XdrError) {
    return { kind: "auth-error", xid, stat: AuthStat.BADCRED, reason: credentialAuth.message };
  }
  const verifier = readOpaqueAuth(reader);
  if (verifier instanceof XdrError) {
    return { kind: "auth-error", xid, stat: AuthStat.BADVERF, reason: verifier.message };
  }
  const credential = toCredential(credentialAuth);
  if (credential instanceof XdrError) {
    return { kind: "auth-error", xid, stat: AuthStat.BADCRED, reason: credential.message };
  }
  // AUTH_NONE and AUTH_SYS both carry an AUTH_NONE verifier (RFC 5531 appendix A).
  if (verifier.flavor !== AuthFlavor.NONE) {
    return { kind: "auth-error", xid, stat: AuthStat.BADVERF, reason: `verifier flavor ${verifier.flavor}` };
  }
  return { kind: "call", xid, program, version, procedure, credential, args: reader };
}

function readOpaqueAuth(reader: XdrReader): OpaqueAuth | XdrError {
  try {
    const flavor = reader.u32();
    const body = reader.opaque(RPC_AUTH_BODY_BYTES_MAX, "opaque_auth body");
    return { flavor, body };
  } catch (error) {
    if (error instanceof XdrError) return error;
    throw error;
  }
}

function toCredential(auth: OpaqueAuth): Credential | XdrError {
  if (auth.flavor === AuthFlavor.NONE) {
    return auth.body.length === 0
      ? { flavor: "none" }
      : new XdrError(`AUTH_NONE credential with a body of ${auth.body.length} bytes`);
  }
  if (auth.flavor !== AuthFlavor.SYS) return new XdrError(`credential flavor ${auth.flavor} is not taken`);
  try {
    return { flavor: "sys", sys: decodeAuthSys(auth.body) };
  } catch (error) {
    if (error instanceof XdrError) return error;
    throw error;
  }
}

/** An authsys_parms body; every byte must belong to it. Throws XdrError. */
export function decodeAuthSys(body: Uint8Array): AuthSys {
  const reader = new XdrReader(body);
  const stamp = reader.u32();
  const machineName = reader.string(AUTH_SYS_MACHINE_NAME_BYTES_MAX, "machinename");
  const uid = reader.u32();
  const gid = reader.u32();
  const gidCount = reader.u32();
  if (gidCount > AUTH_SYS_GIDS_MAX) throw new XdrError(`${gidCount} gids exceed ${AUTH_SYS_GIDS_MAX}`);
  const gids: number[] = [];
  for (let i = 0; i < gidCount; i++) gids.push(reader.u32());
  reader.finish("AUTH_SYS body");
  return { stamp, machineName, uid, gid, gids };
}

/** The authsys_parms body for `sys`; the bounds are the server's, so a caller over them has a bug. */
export function encodeAuthSys(sys: AuthSys): Uint8Array {
  if (!(sys.gids.length <= AUTH_SYS_GIDS_MAX))
    assertionFailed(`${sys.gids.length} gids exceed ${AUTH_SYS_GIDS_MAX}`);
  const machineName = textEncoder.encode(sys.machineName);
  assert(machineName.length <= AUTH_SYS_MACHINE_NAME_BYTES_MAX, "machinename too long");
  const writer = new XdrWriter(64 + machineName.length);
  writer.u32(sys.stamp).opaque(machineName).u32(sys.uid).u32(sys.gid).u32(sys.gids.length);
  for (const gid of sys.gids) writer.u32(gid);
  return writer.bytes();
}

function isOpaqueAuth(credential: Credential | OpaqueAuth): credential is OpaqueAuth {
  return typeof credential.flavor === "number";
}

function toOpaqueAuth(credential: Credential | OpaqueAuth): OpaqueAuth {
  if (isOpaqueAuth(credential)) return credential;
  if (credential.flavor === "none") return AUTH_NONE;
  return { flavor: AuthFlavor.SYS, body: encodeAuthSys(credential.sys) };
}

export interface CallToEncode {
  readonly xid: number;
  readonly program: number;
  readonly version: number;
  readonly procedure: number;
  /** A credential, or any opaque_auth (to send what a server must refuse). AUTH_NONE by default. */
  readonly credential?: Credential | OpaqueAuth;
  /** AUTH_NONE by default. */
  readonly verifier?: OpaqueAuth;
  /** RPC_VERSION by default; another value provokes RPC_MISMATCH. */
  readonly rpcVersion?: number;
}

/** A call message: its header, then the argument chunks (not copied). Not record-marked. */
export function encodeCall(call: CallToEncode, args: readonly Uint8Array[]): Uint8Array[] {
  const credential = toOpaqueAuth(call.credential ?? AUTH_NONE);
  const verifier = call.verifier ?? AUTH_NONE;
  const writer = new XdrWriter(48 + credential.body.length + verifier.body.length);
  writer
    .u32(call.xid)
    .u32(MsgType.CALL)
    .u32(call.rpcVersion ?? RPC_VERSION);
  writer.u32(call.program).u32(call.version).u32(call.procedure);
  writer.u32(credential.flavor).opaque(credential.body);
  writer.u32(verifier.flavor).opaque(verifier.body);
  return [writer.bytes(), ...args];
}

/** Every reply the server sends: a handler's outcome, or an answer of the RPC layer itself. */
export type ReplyToEncode =
  | Exclude<RpcOutcome, { readonly kind: "drop" }>
  | { readonly kind: "prog-unavail" }
  | { readonly kind: "prog-mismatch"; readonly low: number; readonly high: number }
  | { readonly kind: "proc-unavail" }
  | { readonly kind: "rpc-mismatch" };

/** A reply message: its header, then (for success) the body chunks, not copied. Not record-marked. */
export function encodeReply(xid: number, reply: ReplyToEncode): Uint8Array[] {
  const writer = new XdrWriter(REPLY_HEADER_BYTES_MAX);
  const body = writeReplyHeader(writer, xid, reply);
  return [writer.bytes(), ...body];
}

/**
 * A reply as one record ready for the socket: the record mark shares the reply header's buffer, so a
 * reply is one small allocation plus the body chunks (not copied).
 */
export function encodeReplyRecord(xid: number, reply: ReplyToEncode): Uint8Array[] {
  const writer = new XdrWriter(FRAGMENT_HEADER_BYTES + REPLY_HEADER_BYTES_MAX);
  writer.u32(0); // the record mark, set once the length is known
  const body = writeReplyHeader(writer, xid, reply);
  const header = writer.bytes();
  let recordBytes = header.length - FRAGMENT_HEADER_BYTES;
  for (const chunk of body) recordBytes += chunk.length;
  writeFragmentHeader(header, recordBytes, true);
  return [header, ...body];
}

/** Writes the reply header into `writer`; returns the body chunks that follow it. */
function writeReplyHeader(writer: XdrWriter, xid: number, reply: ReplyToEncode): readonly Uint8Array[] {
  writer.u32(xid).u32(MsgType.REPLY);
  if (reply.kind === "rpc-mismatch") {
    writer.u32(ReplyStat.MSG_DENIED).u32(RejectStat.RPC_MISMATCH).u32(RPC_VERSION).u32(RPC_VERSION);
    return NO_BODY;
  }
  if (reply.kind === "auth-error") {
    writer.u32(ReplyStat.MSG_DENIED).u32(RejectStat.AUTH_ERROR).u32(reply.stat);
    return NO_BODY;
  }
  // Accepted: our verifier is always AUTH_NONE (we take AUTH_NONE and AUTH_SYS only).
  writer.u32(ReplyStat.MSG_ACCEPTED).u32(AuthFlavor.NONE).u32(0);
  switch (reply.kind) {
    case "success":
      writer.u32(AcceptStat.SUCCESS);
      return reply.body;
    case "prog-mismatch":
      writer.u32(AcceptStat.PROG_MISMATCH).u32(reply.low).u32(reply.high);
      return NO_BODY;
    case "prog-unavail":
      writer.u32(AcceptStat.PROG_UNAVAIL);
      return NO_BODY;
    case "proc-unavail":
      writer.u32(AcceptStat.PROC_UNAVAIL);
      return NO_BODY;
    case "garbage-args":
      writer.u32(AcceptStat.GARBAGE_ARGS);
      return NO_BODY;
    case "system-error":
      writer.u32(AcceptStat.SYSTEM_ERR);
      return NO_BODY;
    default:
      return unreachable(reply, "reply kind");
  }
}

/** A reply as a client sees it. */
export type RpcReply =
  | {
      readonly xid: number;
      readonly kind: "success";
      readonly verifier: OpaqueAuth;
      /** Positioned at the procedure's results. */
      readonly results: XdrReader;
    }
  | {
      readonly xid: number;
      readonly kind: "prog-unavail" | "proc-unavail" | "garbage-args" | "system-error";
      readonly verifier: OpaqueAuth;
    }
  | {
      readonly xid: number;
      readonly kind: "prog-mismatch";
      readonly verifier: OpaqueAuth;
      readonly low: number;
      readonly high: number;
    }
  | { readonly xid: number; readonly kind: "rpc-mismatch"; readonly low: number; readonly high: number }
  | { readonly xid: number; readonly kind: "auth-error"; readonly stat: AuthStatCode };

export type RpcReplyKind = RpcReply["kind"];

const ACCEPT_KINDS = {
  [AcceptStat.PROG_UNAVAIL]: "prog-unavail",
  [AcceptStat.PROC_UNAVAIL]: "proc-unavail",
  [AcceptStat.GARBAGE_ARGS]: "garbage-args",
  [AcceptStat.SYSTEM_ERR]: "system-error",
} as const;

/** Decodes a reply record. Throws XdrError when it is not a well-formed reply. */
export function decodeReply(record: Uint8Array): RpcReply {
  const reader = new XdrReader(record);
  const xid = reader.u32();
  const msgType = reader.u32();
  if (msgType !== MsgType.REPLY) throw new XdrError(`msg_type ${msgType} is not REPLY`);
  const replyStat = reader.enumOf([ReplyStat.MSG_ACCEPTED, ReplyStat.MSG_DENIED], "reply_stat");
  if (replyStat === ReplyStat.MSG_DENIED) {
    const rejectStat = reader.enumOf([RejectStat.RPC_MISMATCH, RejectStat.AUTH_ERROR], "reject_stat");
    if (rejectStat === RejectStat.RPC_MISMATCH) {
      const low = reader.u32();
      const high = reader.u32();
      reader.finish("RPC_MISMATCH reply");
      return { xid, kind: "rpc-mismatch", low, high };
    }
    const stat = reader.enumOf(AUTH_STATS, "auth_stat");
    reader.finish("AUTH_ERROR reply");
    return { xid, kind: "auth-error", stat };
  }
  const verifierFlavor = reader.u32();
  const verifier = { flavor: verifierFlavor, body: reader.opaque(RPC_AUTH_BODY_BYTES_MAX, "verifier") };
  const acceptStat = reader.enumOf(Object.values(AcceptStat), "accept_stat");
  switch (acceptStat) {
    case AcceptStat.SUCCESS:
      return { xid, kind: "success", verifier, results: reader };
    case AcceptStat.PROG_MISMATCH: {
      const low = reader.u32();
      const high = reader.u32();
      reader.finish("PROG_MISMATCH reply");
      return { xid, kind: "prog-mismatch", verifier, low, high };
    }
    default:
      reader.finish("accepted reply");
      return { xid, kind: ACCEPT_KINDS[acceptStat], verifier };
  }
}

/** A reply that was expected to be SUCCESS and was not. */
export class RpcReplyError extends Error {
  override name = "RpcReplyError";
  readonly reply: RpcReply;
  constructor(reply: RpcReply) {
    super(`RPC reply to xid ${reply.xid} is ${reply.kind}, not success`);
    this.reply = reply;
  }
}

/** The results of a SUCCESS reply; any other reply throws RpcReplyError. */
export function resultsOf(reply: RpcReply): XdrReader {
  if (reply.kind !== "success") throw new RpcReplyError(reply);
  return reply.results;
}
