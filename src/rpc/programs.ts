/** Well-known ONC RPC program numbers (RFC 1833, RFC 1813). */
export const RpcProgramNumber = {
  PORTMAP: 100000,
  NFS: 100003,
  MOUNT: 100005,
} as const;
