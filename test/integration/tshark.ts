import assert from "node:assert/strict";
import { type ChildProcessByStdio, spawn } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";
import { connect } from "node:net";
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";

/** Capture readiness and the final flush each take well under a second; these only bound a hang. */
const PROBE_MS_MAX = 30_000;
/** dumpcap hands packets on every ~100 ms; a probe not seen within this is taken as sent before the capture began. */
const PROBE_ATTEMPT_MS_MAX = 2_000;
const EXIT_MS_MAX = 30_000;
/** Decoding a capture of a 100 MiB transfer takes tens of seconds. */
const DECODE_MS_MAX = 600_000;
/** Kernel buffer for the capture, in MiB: loopback bursts at gigabytes a second. */
const CAPTURE_BUFFER_MIB = 256;
/** Problems listed in a failure message; the count says how many more there were. */
const PROBLEMS_LISTED_MAX = 20;
/** Expert info severity "Error" (the values are PI_COMMENT .. PI_ERROR in epan/proto.h). */
const SEVERITY_ERROR = 0x00800000;

export interface CaptureOptions {
  /** The server's TCP ports: the capture filter, the probe target (the first), and decode-as-RPC. */
  readonly ports: readonly number[];
  /** Where the capture is written (pcap). */
  readonly file: string;
  readonly host?: string;
  readonly interface?: string;
}

export interface ConformanceReport {
  readonly file: string;
  readonly frameCount: number;
  readonly rpcFrames: number;
  readonly nfsFrames: number;
  readonly mountFrames: number;
  /** One line per frame with a malformed packet or error-level expert info. */
  readonly problems: readonly string[];
  /** Packets the capture lost (the kernel buffer overflowed): the decode cannot be trusted then. */
  readonly dropped: number;
}

export interface Capture {
  readonly file: string;
  /** Waits until everything sent so far is in the capture, stops it, and decodes it. */
  finish(): Promise<ConformanceReport>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Arguments that make tshark read the server's non-standard ports as ONC RPC (then MOUNT and NFS by program). */
function decodeAsRpc(ports: readonly number[]): string[] {
  return [
    ...ports.flatMap((port) => ["-d", `tcp.port==${port},rpc`]),
    ...["-o", "rpc.desegment_rpc_over_tcp:TRUE", "-o", "rpc.defragment_rpc_over_tcp:TRUE"],
  ];
}

interface TcpPacket {
  readonly srcPort: number;
  readonly dstPort: number;
}

/** Reads a pcap byte stream as it arrives and reports the TCP ports of each packet. */
class PcapPorts {
  private pending: Buffer = Buffer.alloc(0);
  private littleEndian = true;
  private linkType = -1;
  private readonly onPacket: (packet: TcpPacket) => void;

  constructor(onPacket: (packet: TcpPacket) => void) {
    this.onPacket = onPacket;
  }

  push(chunk: Buffer): void {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    let offset = 0;
    if (this.linkType < 0) {
      if (this.pending.length < 24) return;
      const magic = this.pending.readUInt32LE(0);
      this.littleEndian = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
      this.linkType = this.u32(this.pending, 20);
      offset = 24;
    }
    while (this.pending.length - offset >= 16) {
      const captured = this.u32(this.pending, offset + 8);
      if (this.pending.length - offset - 16 < captured) break;
      const packet = tcpPorts(this.linkType, this.pending.subarray(offset + 16, offset + 16 + captured));
      if (packet !== undefined) this.onPacket(packet);
      offset += 16 + captured;
    }
    this.pending = this.pending.subarray(offset);
  }

  private u32(buffer: Buffer, offset: number): number {
    return this.littleEndian ? buffer.readUInt32LE(offset) : buffer.readUInt32BE(offset);
  }
}

/** TCP ports of a captured frame, for the link types a Linux loopback capture uses. */
function tcpPorts(linkType: number, frame: Buffer): TcpPacket | undefined {
  let ipOffset: number;
  if (linkType === 1)
    ipOffset = 14; // Ethernet (what "lo" gives)
  else if (linkType === 113)
    ipOffset = 16; // Linux cooked
  else if (linkType === 276)
    ipOffset = 20; // Linux cooked v2
  else if (linkType === 101 || linkType === 12)
    ipOffset = 0; // raw IP
  else return undefined;
  if (frame.length < ipOffset + 1) return undefined;
  const version = frame[ipOffset]! >> 4;
  let tcpOffset: number;
  if (version === 4) {
    if (frame.length < ipOffset + 20 || frame[ipOffset + 9] !== 6) return undefined;
    tcpOffset = ipOffset + (frame[ipOffset]! & 0x0f) * 4;
  } else if (version === 6) {
    if (frame.length < ipOffset + 40 || frame[ipOffset + 6] !== 6) return undefined;
    tcpOffset = ipOffset + 40;
  } else {
    return undefined;
  }
  if (frame.length < tcpOffset + 4) return undefined;
  return { srcPort: frame.readUInt16BE(tcpOffset), dstPort: frame.readUInt16BE(tcpOffset + 2) };
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

type Tshark = ChildProcessByStdio<null, Readable, Readable>;

/**
 * Opens a TCP connection to host:port and resolves once the capture has seen its SYN, which proves the
 * capture is live and has taken in every packet sent before it.
 */
async function probe(
  host: string,
  port: number,
  seen: SourcePorts,
  exited: Promise<unknown>,
  msMax = PROBE_MS_MAX,
): Promise<void> {
  const socket = connect({ host, port });
  try {
    const localPort = await new Promise<number>((resolve, reject) => {
      socket.once("connect", () => resolve(socket.localPort ?? -1));
      socket.once("error", reject);
    });
    const gone = exited.then(() => {
      throw new Error("tshark exited before it saw the probe connection");
    });
    await withTimeout(
      Promise.race([seen.wait(localPort), gone]),
      msMax,
      `capturing a probe connection to port ${port}`,
    );
  } finally {
    socket.destroy();
  }
}

/** The client ports seen sending to the probed port (one per connection, so few), and who waits for which. */
class SourcePorts {
  private readonly seen = new Set<number>();
  private readonly waiters = new Map<number, () => void>();

  add(port: number): void {
    this.seen.add(port);
    this.waiters.get(port)?.();
  }

  wait(port: number): Promise<void> {
    if (this.seen.has(port)) return Promise.resolve();
    return new Promise((resolve) =>
      this.waiters.set(port, () => {
        this.waiters.delete(port);
        resolve();
      }),
    );
  }
}

/**
 * Resolves once the capture is live. dumpcap writes the file header once it has opened the interface, but
 * says "Capturing on" before that; a probe can still slip past while the filter is being attached, so
 * probes are repeated (each bounded) until one is captured.
 */
async function waitUntilLive(
  host: string,
  port: number,
  seen: SourcePorts,
  exited: Promise<unknown>,
  headerSeen: Promise<void>,
): Promise<void> {
  await withTimeout(headerSeen, PROBE_MS_MAX, "tshark's capture file header");
  const deadline = performance.now() + PROBE_MS_MAX;
  for (;;) {
    try {
      await probe(host, port, seen, exited, PROBE_ATTEMPT_MS_MAX);
      return;
    } catch (error) {
      if (performance.now() > deadline) throw error;
    }
  }
}

/**
 * Starts capturing the traffic to and from `ports` on loopback with tshark, and resolves once the capture
 * is live (a probe connection to the first port has been captured). The server must be listening.
 */
export async function startCapture(options: CaptureOptions): Promise<Capture> {
  const host = options.host ?? "127.0.0.1";
  const filter = options.ports.map((port) => `tcp port ${port}`).join(" or ");
  const child: Tshark = spawn(
    "tshark",
    [
      "-i",
      options.interface ?? "lo",
      "-f",
      filter,
      "-B",
      String(CAPTURE_BUFFER_MIB),
      "-F",
      "pcap",
      "-w",
      "-",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.on("close", (status) => resolve(status)));
  const spawnFailed = new Promise<never>((_, reject) => child.on("error", reject));
  spawnFailed.catch(() => {});
  const out: WriteStream = createWriteStream(options.file);
  const seen = new SourcePorts();
  const ports = new PcapPorts((packet) => {
    if (packet.dstPort === options.ports[0]) seen.add(packet.srcPort);
  });
  let headerArrived: () => void = () => {};
  const headerSeen = new Promise<void>((resolve) => {
    headerArrived = resolve;
  });
  child.stdout.on("data", (chunk: Buffer) => {
    headerArrived();
    ports.push(chunk);
    if (!out.write(chunk)) {
      child.stdout.pause();
      out.once("drain", () => child.stdout.resume());
    }
  });
  const firstPort = options.ports[0];
  assert(firstPort !== undefined, "a capture needs at least one port");

  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGINT");
    await withTimeout(exited, EXIT_MS_MAX, "tshark's exit after SIGINT").catch(async (error: unknown) => {
      child.kill("SIGKILL");
      await exited;
      throw error;
    });
    await new Promise<void>((resolve, reject) =>
      out.end((error?: Error | null) => (error ? reject(error) : resolve())),
    );
  };

  try {
    await Promise.race([waitUntilLive(host, firstPort, seen, exited, headerSeen), spawnFailed]);
  } catch (error) {
    await stop().catch(() => {});
    throw new Error(`tshark capture did not start: ${(error as Error).message}\n${stderr}`);
  }

  let finished: Promise<ConformanceReport> | undefined;
  return {
    file: options.file,
    finish() {
      finished ??= (async () => {
        await probe(host, firstPort, seen, exited);
        await stop();
        const dropped = Number(/(\d+) packets? dropped/.exec(stderr)?.[1] ?? 0);
        return { ...(await decode(options.file, options.ports)), dropped };
      })();
      return finished;
    },
    async [Symbol.asyncDispose]() {
      await stop().catch(() => {});
    },
  };
}

interface Decoded {
  readonly file: string;
  readonly frameCount: number;
  readonly rpcFrames: number;
  readonly nfsFrames: number;
  readonly mountFrames: number;
  readonly problems: readonly string[];
}

/** Decodes a capture with tshark and lists the frames with malformed packets or error-level expert info. */
export async function decode(file: string, ports: readonly number[]): Promise<Decoded> {
  const fields = [
    "frame.number",
    "frame.protocols",
    "_ws.malformed",
    "_ws.expert.severity",
    "_ws.expert.message",
  ];
  const args = [
    "-r",
    file,
    "-n",
    ...decodeAsRpc(ports),
    "-T",
    "fields",
    "-E",
    "separator=/t",
    "-E",
    "occurrence=a",
  ];
  args.push("-E", "aggregator=;", ...fields.flatMap((field) => ["-e", field]), "-e", "_ws.col.Info");
  const child = spawn("tshark", args, { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (status) => resolve(status));
  });
  const counts = { frameCount: 0, rpcFrames: 0, nfsFrames: 0, mountFrames: 0 };
  const problems: string[] = [];
  const lines = createInterface({ input: child.stdout });
  const linesClosed = new Promise<void>((resolve) => lines.once("close", resolve));
  lines.on("line", (line) => {
    const [number = "", protocols = "", malformed = "", severities = "", messages = "", info = ""] =
      line.split("\t");
    counts.frameCount++;
    const layers = protocols.split(":");
    if (layers.includes("rpc")) counts.rpcFrames++;
    if (layers.includes("nfs")) counts.nfsFrames++;
    if (layers.includes("mount")) counts.mountFrames++;
    const isError = severities.split(";").some((s) => s !== "" && Number(s) >= SEVERITY_ERROR);
    if (malformed !== "" || isError) {
      const what = malformed !== "" ? "malformed packet" : "error-level expert info";
      problems.push(`frame ${number} [${protocols}] ${what}: ${messages} | ${info}`);
    }
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), DECODE_MS_MAX);
  const status = await exited.finally(() => clearTimeout(timer));
  await linesClosed;
  if (status !== 0) throw new Error(`tshark -r ${file} exited ${status}:\n${stderr}`);
  return { file, ...counts, problems };
}

export interface ConformanceExpectation {
  /** The capture must hold NFS frames (the test did NFS work). */
  readonly nfs?: boolean;
  /** The capture must hold MOUNT frames (the test mounted). */
  readonly mount?: boolean;
}

/** Fails, listing the frames, if the dissectors found anything malformed or wrong; or if the capture is unusable. */
export function assertConformant(report: ConformanceReport, expect: ConformanceExpectation = {}): void {
  const where = `capture ${report.file}: ${report.frameCount} frames, ${report.rpcFrames} RPC, ${report.nfsFrames} NFS, ${report.mountFrames} MOUNT`;
  assert.equal(
    report.dropped,
    0,
    `the capture lost ${report.dropped} packets, so it cannot be judged (${where})`,
  );
  if (expect.nfs === true) assert.ok(report.nfsFrames > 0, `tshark decoded no NFS frame (${where})`);
  if (expect.mount === true) assert.ok(report.mountFrames > 0, `tshark decoded no MOUNT frame (${where})`);
  const listed = report.problems.slice(0, PROBLEMS_LISTED_MAX).join("\n  ");
  const more =
    report.problems.length > PROBLEMS_LISTED_MAX
      ? `\n  ... and ${report.problems.length - PROBLEMS_LISTED_MAX} more`
      : "";
  assert.equal(
    report.problems.length,
    0,
    `tshark's RPC/MOUNT/NFS dissectors reported ${report.problems.length} problem frames (${where}):\n  ${listed}${more}`,
  );
}
