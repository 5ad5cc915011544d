export {
  RPC_CLIENT_OUTSTANDING_MAX,
  RPC_CLIENT_TIMEOUT_MS,
  type RpcCallOptions,
  RpcClient,
  RpcClientError,
  type RpcClientErrorCode,
  type RpcClientOptions,
  type RpcExchangeOptions,
} from "./client.ts";
export {
  type CallToEncode,
  type DecodedCall,
  decodeAuthSys,
  decodeCall,
  decodeReply,
  encodeAuthSys,
  encodeCall,
  encodeReply,
  encodeReplyRecord,
  MsgType,
  type OpaqueAuth,
  RejectStat,
  ReplyStat,
  type ReplyToEncode,
  type RpcReply,
  RpcReplyError,
  type RpcReplyKind,
  resultsOf,
} from "./message.ts";
export {
  PORTMAP_DUMP_MAPPINGS_MAX,
  PORTMAP_VERSION,
  type PortMapping,
  PortmapProcedure,
  PortmapProtocol,
  portmapProgram,
} from "./portmap.ts";
export { RpcProgramNumber } from "./programs.ts";
export {
  encodeFragments,
  encodeRecord,
  FRAGMENT_HEADER_BYTES,
  RecordDecoder,
  type RecordDecoderOptions,
  RecordMarkingError,
  type RecordMarkingErrorCode,
  writeFragmentHeader,
} from "./record-marking.ts";
export { RPC_CLOSE_TIMEOUT_MS, RPC_CONNECTIONS_MAX, RpcServer, type RpcServerOptions } from "./server.ts";
export { normalizeAddress, type RpcConnectionStats } from "./server-connection.ts";
export * from "./types.ts";
