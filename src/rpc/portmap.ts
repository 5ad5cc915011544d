import type { XdrReader } from "../xdr/index.ts";
import { XdrWriter } from "../xdr/index.ts";
import { RpcProgramNumber } from "./programs.ts";
import type { RpcHandler, RpcOutcome, RpcProgram } from "./types.ts";

export const PORTMAP_VERSION = 2;

/** PMAPPROC_* (RFC 1833 section 3.2). CALLIT (5) is left out: it relays calls, an amplifier. */
export const PortmapProcedure = { NULL: 0, SET: 1, UNSET: 2, GETPORT: 3, DUMP: 4 } as const;

/** IPPROTO_* values a mapping's protocol travels as. */
export const PortmapProtocol = { tcp: 6, udp: 17 } as const;

export interface PortMapping {
  readonly program: number;
  readonly version: number;
  readonly protocol: "tcp" | "udp";
  readonly port: number;
}

/** Mappings a DUMP reply lists at most: 5 words each, far under a record's bound. */
export const PORTMAP_DUMP_MAPPINGS_MAX = 1024;

interface MappingArgs {
  readonly program: number;
  readonly version: number;
  readonly protocol: number;
  readonly port: number;
}

function readMapping(args: XdrReader): MappingArgs {
  const mapping = { program: args.u32(), version: args.u32(), protocol: args.u32(), port: args.u32() };
  args.finish("portmap mapping");
  return mapping;
}

function success(writer: XdrWriter): RpcOutcome {
  return { kind: "success", body: [writer.bytes()] };
}

const EMPTY_SUCCESS: RpcOutcome = { kind: "success", body: [] };

/**
 * PORTMAP v2 (RFC 1833) answering from `mappings`, read at each call so that it follows the servers
 * as they come and go. Registrations are not taken: SET and UNSET answer false.
 */
export function portmapProgram(mappings: () => readonly PortMapping[]): RpcProgram {
  const handlers = new Map<number, RpcHandler>([
    [
      PortmapProcedure.NULL,
      async (call) => {
        call.args.finish("portmap NULL");
        return EMPTY_SUCCESS;
      },
    ],
    [
      PortmapProcedure.SET,
      async (call) => {
        readMapping(call.args);
        return success(new XdrWriter(4).bool(false));
      },
    ],
    [
      PortmapProcedure.UNSET,
      async (call) => {
        readMapping(call.args);
        return success(new XdrWriter(4).bool(false));
      },
    ],
    [
      PortmapProcedure.GETPORT,
      async (call) => {
        const wanted = readMapping(call.args);
        const found = mappings().find(
          (mapping) =>
            mapping.program === wanted.program &&
            mapping.version === wanted.version &&
            PortmapProtocol[mapping.protocol] === wanted.protocol,
        );
        // Port 0 is RFC 1833's "not registered".
        return success(new XdrWriter(4).u32(found?.port ?? 0));
      },
    ],
    [
      PortmapProcedure.DUMP,
      async (call) => {
        call.args.finish("portmap DUMP");
        const listed = mappings().slice(0, PORTMAP_DUMP_MAPPINGS_MAX);
        const writer = new XdrWriter(4 + listed.length * 20);
        // pmaplist: an optional-data linked list, each entry preceded by TRUE, ended by FALSE.
        for (const mapping of listed) {
          writer.bool(true).u32(mapping.program).u32(mapping.version);
          writer.u32(PortmapProtocol[mapping.protocol]).u32(mapping.port);
        }
        return success(writer.bool(false));
      },
    ],
  ]);
  return {
    program: RpcProgramNumber.PORTMAP,
    version: PORTMAP_VERSION,
    name: "portmap",
    handler: (procedure) => handlers.get(procedure),
  };
}
