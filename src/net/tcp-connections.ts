/**
 * The TCP connections a VIP carries, read from `ss -tnH state established src VIP`. The kernel
 * filters (sock_diag), so the output holds only the VIP's connections however many the node has, and
 * ss prints addresses in their usual form: no byte order to undo as in /proc/net/tcp, and an IPv4
 * connection accepted by a dual-stack listener (`[::ffff:a.b.c.d]`) is found by the same filter.
 * Nothing here runs a command (see vip-driver.ts).
 */
import { parseIpv4 } from "./cidr.ts";

/** What a holder tracks per VIP: enough for every NFS client of a busy vserver, few enough to tickle at once. */
export const VIP_CONNECTIONS_MAX = 4096;

export interface TcpEndpoint {
  readonly ip: string;
  readonly port: number;
}

/** One established connection: `local` is the VIP's end. */
export interface TcpConnection {
  readonly local: TcpEndpoint;
  readonly remote: TcpEndpoint;
}

export interface TrackedConnections {
  readonly connections: readonly TcpConnection[];
  /** Connections past the bound, not kept: their clients wait for a retransmission after a move. */
  readonly omittedCount: number;
}

/** A line of ss output that is not a connection as we asked ss to print them. */
export class TcpConnectionsParseError extends Error {
  override name = "TcpConnectionsParseError";
  readonly line: string;
  constructor(line: string) {
    super(`not a line of "ss -tnH state established": ${JSON.stringify(line)}`);
    this.line = line;
  }
}

/** The command whose output `parseEstablished` reads. */
export function establishedArgv(vip: string): readonly string[] {
  parseIpv4(vip);
  return ["ss", "-tnH", "state", "established", "src", vip];
}

/** `10.1.1.50:2049`, `[::ffff:10.1.1.50]:2049`, or either with `%eth0` when the socket is bound to a device. */
const IPV4_ENDPOINT = /^(?:\[::ffff:([0-9.]+)(?:%[^\]]+)?\]|([0-9.]+)(?:%\S+)?):(\d{1,5})$/i;
/** A native IPv6 endpoint: never a VIP's (VIPs are IPv4), so passed over rather than refused. */
const IPV6_ENDPOINT = /^\[[0-9a-f:]+(?:%[^\]]+)?\]:\d{1,5}$/i;

/** The endpoint, undefined for a native IPv6 one, or a TcpConnectionsParseError naming `line`. */
function parseEndpoint(text: string, line: string): TcpEndpoint | undefined {
  const match = IPV4_ENDPOINT.exec(text);
  if (match === null) {
    if (IPV6_ENDPOINT.test(text)) return undefined;
    throw new TcpConnectionsParseError(line);
  }
  const ip = match[1] ?? match[2] ?? "";
  const port = Number(match[3]);
  try {
    parseIpv4(ip);
  } catch {
    throw new TcpConnectionsParseError(line);
  }
  if (port > 65535) throw new TcpConnectionsParseError(line);
  return { ip, port };
}

/**
 * The connections in `ss -tnH state established` output whose local address is `localIp`, the
 * first `countMax` of them. Columns: Recv-Q, Send-Q, local, peer (and Process, empty without -p).
 */
export function parseEstablished(
  text: string,
  localIp: string,
  countMax: number = VIP_CONNECTIONS_MAX,
): TrackedConnections {
  const wanted = parseIpv4(localIp);
  const connections: TcpConnection[] = [];
  let omittedCount = 0;
  for (const line of text.split("\n")) {
    const fields = line.trim().split(/\s+/);
    if (fields.length === 1 && fields[0] === "") continue;
    const [recvQ, sendQ, local, remote] = fields;
    if (fields.length < 4 || !/^\d+$/.test(recvQ ?? "") || !/^\d+$/.test(sendQ ?? ""))
      throw new TcpConnectionsParseError(line);
    const localEnd = parseEndpoint(local ?? "", line);
    const remoteEnd = parseEndpoint(remote ?? "", line);
    if (localEnd === undefined || remoteEnd === undefined || parseIpv4(localEnd.ip) !== wanted) continue;
    const connection = { local: localEnd, remote: remoteEnd };
    if (connections.length < countMax) connections.push(connection);
    else omittedCount += 1;
  }
  return { connections, omittedCount };
}
