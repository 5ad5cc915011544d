import type { XdrReader } from "../xdr/index.ts";

export const RPC_VERSION = 2;

/** Largest record (after reassembling fragments): 1 MiB of NFS payload plus room for headers. */
export const RPC_RECORD_BYTES_MAX = 1024 * 1024 + 16 * 1024;
/** Fragments one record may arrive in before the connection is closed as abusive. */
export const RPC_FRAGMENTS_PER_RECORD_MAX = 1024;
/** Calls of one connection being worked on at once; beyond it the server stops reading that socket. */
export const RPC_IN_FLIGHT_PER_CONNECTION_MAX = 64;
/** Bytes of an opaque_auth body (RFC 5531). */
export const RPC_AUTH_BODY_BYTES_MAX = 400;
export const AUTH_SYS_MACHINE_NAME_BYTES_MAX = 255;
export const AUTH_SYS_GIDS_MAX = 16;

export const AuthFlavor = { NONE: 0, SYS: 1 } as const;

/** auth_stat (RFC 5531 section 9). */
export const AuthStat = {
  OK: 0,
  BADCRED: 1,
  REJECTEDCRED: 2,
  BADVERF: 3,
  REJECTEDVERF: 4,
  TOOWEAK: 5,
} as const;
export type AuthStatCode = (typeof AuthStat)[keyof typeof AuthStat];

/** accept_stat (RFC 5531 section 9). */
export const AcceptStat = {
  SUCCESS: 0,
  PROG_UNAVAIL: 1,
  PROG_MISMATCH: 2,
  PROC_UNAVAIL: 3,
  GARBAGE_ARGS: 4,
  SYSTEM_ERR: 5,
} as const;

export interface AuthSys {
  readonly stamp: number;
  readonly machineName: string;
  readonly uid: number;
  readonly gid: number;
  readonly gids: readonly number[];
}

export type Credential = { readonly flavor: "none" } | { readonly flavor: "sys"; readonly sys: AuthSys };

export interface ClientAddress {
  /** IPv4 or IPv6 address, without the "::ffff:" prefix of IPv4-mapped addresses. */
  readonly address: string;
  readonly port: number;
}

/** One call, decoded up to the procedure's arguments. */
export interface RpcCall {
  readonly xid: number;
  readonly program: number;
  readonly version: number;
  readonly procedure: number;
  readonly credential: Credential;
  /** The procedure's arguments, still encoded. */
  readonly args: XdrReader;
  readonly client: ClientAddress;
  /** Distinct per TCP connection over the server's life. */
  readonly connectionId: number;
  /**
   * The handler says that nothing it keeps, once it has returned, refers to `args`' bytes (a WRITE
   * whose data the volume has copied or written): the server may then reuse the record's buffer.
   */
  readonly releaseArgs?: () => void;
}

/**
 * What a procedure handler answers. An XdrError thrown while decoding arguments becomes GARBAGE_ARGS;
 * any other exception becomes SYSTEM_ERR (and is logged).
 */
export type RpcOutcome =
  /** The encoded results; several chunks are sent back to back without copying. */
  | {
      readonly kind: "success";
      readonly body: readonly Uint8Array[];
      /** Called once the body has left for the kernel or is given up: its buffers may be reused then. */
      readonly sent?: () => void;
    }
  | { readonly kind: "garbage-args" }
  | { readonly kind: "system-error" }
  | { readonly kind: "auth-error"; readonly stat: AuthStatCode }
  /** Send no reply at all (the client will retransmit). */
  | { readonly kind: "drop" };

export type RpcHandler = (call: RpcCall) => Promise<RpcOutcome>;

/** One version of one program; a server holds several. */
export interface RpcProgram {
  readonly program: number;
  readonly version: number;
  readonly name: string;
  /** The handler of `procedure`, or undefined for PROC_UNAVAIL. */
  handler(procedure: number): RpcHandler | undefined;
}
