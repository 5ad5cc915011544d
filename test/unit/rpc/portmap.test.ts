import assert from "node:assert/strict";
import { test } from "node:test";
import {
  type PortMapping,
  PortmapProcedure,
  PortmapProtocol,
  portmapProgram,
  RpcClient,
  RpcProgramNumber,
  type RpcReply,
  RpcServer,
  resultsOf,
} from "../../../src/rpc/index.ts";
import { XdrWriter } from "../../../src/xdr/index.ts";

const MAPPINGS: PortMapping[] = [
  { program: RpcProgramNumber.NFS, version: 3, protocol: "tcp", port: 2049 },
  { program: RpcProgramNumber.MOUNT, version: 3, protocol: "tcp", port: 20048 },
  { program: RpcProgramNumber.PORTMAP, version: 2, protocol: "tcp", port: 111 },
];

async function startPortmap(mappings: () => readonly PortMapping[]) {
  const server = new RpcServer({ programs: [portmapProgram(mappings)], name: "portmap" });
  const { port } = await server.listen("127.0.0.1", 0);
  const client = await RpcClient.connect("127.0.0.1", port);
  return {
    call: (procedure: number, args: Uint8Array, version = 2) =>
      client.call(RpcProgramNumber.PORTMAP, version, procedure, args),
    [Symbol.asyncDispose]: async () => {
      await client.close();
      await server.close();
    },
  };
}

function mappingArgs(program: number, version: number, protocol: number, port = 0): Uint8Array {
  return new XdrWriter(16).u32(program).u32(version).u32(protocol).u32(port).bytes();
}

function onlyU32(reply: RpcReply): number {
  const results = resultsOf(reply);
  const value = results.u32();
  results.finish("reply");
  return value;
}

test("portmap: GETPORT finds a mapping by program, version and protocol; 0 when there is none", async () => {
  await using portmap = await startPortmap(() => MAPPINGS);
  const getport = async (program: number, version: number, protocol: number) =>
    onlyU32(await portmap.call(PortmapProcedure.GETPORT, mappingArgs(program, version, protocol)));
  assert.equal(await getport(RpcProgramNumber.NFS, 3, PortmapProtocol.tcp), 2049);
  assert.equal(await getport(RpcProgramNumber.MOUNT, 3, PortmapProtocol.tcp), 20048);
  assert.equal(await getport(RpcProgramNumber.NFS, 3, PortmapProtocol.udp), 0, "no UDP");
  assert.equal(await getport(RpcProgramNumber.NFS, 4, PortmapProtocol.tcp), 0, "no NFSv4");
  assert.equal(await getport(123_456, 1, PortmapProtocol.tcp), 0, "unknown program");
});

test("portmap: mappings are read at each call", async () => {
  let mappings: PortMapping[] = [];
  await using portmap = await startPortmap(() => mappings);
  const args = mappingArgs(RpcProgramNumber.NFS, 3, PortmapProtocol.tcp);
  assert.equal(onlyU32(await portmap.call(PortmapProcedure.GETPORT, args)), 0);
  mappings = MAPPINGS;
  assert.equal(onlyU32(await portmap.call(PortmapProcedure.GETPORT, args)), 2049);
});

test("portmap: DUMP lists every mapping as a pmaplist", async () => {
  await using portmap = await startPortmap(() => MAPPINGS);
  const results = resultsOf(await portmap.call(PortmapProcedure.DUMP, new Uint8Array(0)));
  const listed: PortMapping[] = [];
  while (results.bool()) {
    const [program, version, protocol, port] = [results.u32(), results.u32(), results.u32(), results.u32()];
    listed.push({ program, version, protocol: protocol === PortmapProtocol.tcp ? "tcp" : "udp", port });
  }
  results.finish("pmaplist");
  assert.deepEqual(listed, MAPPINGS);
});

test("portmap: NULL answers; SET and UNSET refuse registrations; CALLIT and other versions are refused", async () => {
  await using portmap = await startPortmap(() => MAPPINGS);
  const nullReply = await portmap.call(PortmapProcedure.NULL, new Uint8Array(0));
  assert.equal(resultsOf(nullReply).remaining, 0);
  const registration = mappingArgs(300_000, 1, PortmapProtocol.tcp, 999);
  assert.equal(onlyU32(await portmap.call(PortmapProcedure.SET, registration)), 0, "SET answers false");
  assert.equal(onlyU32(await portmap.call(PortmapProcedure.UNSET, registration)), 0, "UNSET answers false");
  const getport = mappingArgs(300_000, 1, PortmapProtocol.tcp);
  assert.equal(onlyU32(await portmap.call(PortmapProcedure.GETPORT, getport)), 0, "nothing was registered");
  assert.equal((await portmap.call(5, new Uint8Array(0))).kind, "proc-unavail", "CALLIT");
  const v3 = await portmap.call(PortmapProcedure.NULL, new Uint8Array(0), 3);
  assert.deepEqual([v3.kind, v3.kind === "prog-mismatch" && [v3.low, v3.high]], ["prog-mismatch", [2, 2]]);
});

test("portmap: malformed arguments are GARBAGE_ARGS", async () => {
  await using portmap = await startPortmap(() => MAPPINGS);
  const short = new XdrWriter().u32(RpcProgramNumber.NFS).u32(3).bytes();
  assert.equal((await portmap.call(PortmapProcedure.GETPORT, short)).kind, "garbage-args");
  const long = mappingArgs(RpcProgramNumber.NFS, 3, PortmapProtocol.tcp, 0);
  const withExtra = new Uint8Array([...long, 0, 0, 0, 0]);
  assert.equal((await portmap.call(PortmapProcedure.GETPORT, withExtra)).kind, "garbage-args");
  assert.equal((await portmap.call(PortmapProcedure.DUMP, new Uint8Array(4))).kind, "garbage-args");
});
