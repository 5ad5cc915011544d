/**
 * The storage protocol's procedures on a server: authentication first, then each procedure's
 * arguments decoded at this edge into typed values and handed to the chunk store under the
 * volume's owner epoch. Failures the client should see travel as a status (protocol.ts); malformed
 * arguments are GARBAGE_ARGS; anything else is a bug, SYSTEM_ERR, and logged.
 */
import type { Logger } from "pino";
import { BLOCK_BYTES } from "../block/types.ts";
import type { RpcCall, RpcHandler, RpcOutcome, RpcProgram } from "../rpc/types.ts";
import type { ServerAuthenticator } from "./auth.ts";
import { BackgroundGate } from "./background-gate.ts";
import { firstBadBlock } from "./chunk-format.ts";
import type { Admission, ChunkStore } from "./chunk-store.ts";
import type { EpochStore } from "./epoch-store.ts";
import { LoadMonitor } from "./load-monitor.ts";
import type { PeerClients } from "./peer-clients.ts";
import {
  type BlockData,
  CODECS,
  type CopyFromArgs,
  encodeFailure,
  invalid,
  STORAGE_PROGRAM,
  STORAGE_VERSION,
  StorageProc,
  type StorageProcName,
  type StorageProcTypes,
  type WriteArgs,
} from "./protocol.ts";
import { type ChunkRef, type ServerStats, StorageError } from "./types.ts";

/** Counters the server reports in its stats. */
export class ServerCounters {
  readBytes = 0;
  writtenBytes = 0;
  requestsInFlight = 0;
  /** Clients' reads and writes as decayed rates, for the balancer (published by membership). */
  readonly load = new LoadMonitor();
  /** Clients' requests before copies and checks. */
  readonly gate: BackgroundGate;

  constructor(gate: BackgroundGate = new BackgroundGate()) {
    this.gate = gate;
  }
}

/** Test hooks: points where a test holds an operation to provoke a race. */
export interface StorageServerHooks {
  /** A copy has read its blocks from the source and is about to queue its write. */
  readonly afterCopySourceRead?: (chunk: ChunkRef, blockOffset: number, blockCount: number) => Promise<void>;
  /** A client's write has entered the background gate (it counts as in flight) and not the store yet. */
  readonly duringClientWrite?: (chunk: ChunkRef) => Promise<void>;
}

export interface StorageProgramOptions {
  readonly serverId: string;
  readonly store: ChunkStore;
  readonly epochs: EpochStore;
  readonly auth: ServerAuthenticator;
  readonly peers: PeerClients;
  readonly counters: ServerCounters;
  readonly stats: () => ServerStats;
  readonly logger: Logger;
  readonly hooks?: StorageServerHooks;
}

type Handlers = {
  readonly [P in StorageProcName]: (
    args: StorageProcTypes[P]["args"],
    call: RpcCall,
  ) => Promise<StorageProcTypes[P]["result"]>;
};

/** The procedures an unauthenticated connection may call. */
const OPEN_PROCEDURES: ReadonlySet<StorageProcName> = new Set(["NULL", "HELLO", "PROVE"]);
const UNAUTHENTICATED_REPLY: RpcOutcome = {
  kind: "success",
  body: encodeFailure(new StorageError("UNAUTHENTICATED", "authenticate first (HELLO, PROVE)")),
};

export function storageProgram(options: StorageProgramOptions): RpcProgram {
  const log = options.logger.child({ component: "storage" });
  const handlers = makeHandlers(options);
  const byNumber = new Map<number, RpcHandler>(
    (Object.keys(StorageProc) as StorageProcName[]).map((name) => [StorageProc[name], rpcHandler(name)]),
  );

  function rpcHandler<P extends StorageProcName>(name: P): RpcHandler {
    const codec = CODECS[name];
    const run = handlers[name];
    const open = OPEN_PROCEDURES.has(name);
    return async (call) => {
      if (!open && !options.auth.isAuthenticated(call.connectionId)) return UNAUTHENTICATED_REPLY;
      options.counters.requestsInFlight++;
      try {
        // An XdrError escapes: the RPC layer answers GARBAGE_ARGS.
        const args = codec.decodeArgs(call.args);
        const result = await run(args, call);
        return { kind: "success", body: codec.encodeResult(result) };
      } catch (error) {
        const failure = asStorageError(error);
        if (failure === undefined) throw error;
        if (log.isLevelEnabled("debug"))
          log.debug({ procedure: name, code: failure.code, err: failure.message }, "refused");
        return { kind: "success", body: encodeFailure(failure) };
      } finally {
        options.counters.requestsInFlight--;
      }
    };
  }

  return {
    program: STORAGE_PROGRAM,
    version: STORAGE_VERSION,
    name: "storage",
    handler: (procedure) => byNumber.get(procedure),
  };
}

/** Expected failures as the status they travel as; undefined for a bug (or malformed arguments). */
function asStorageError(error: unknown): StorageError | undefined {
  if (error instanceof StorageError) return error;
  // A Node file-system error (EIO, ENOSPC, EROFS...): the disk failed us, not the client.
  if (error instanceof Error && "code" in error && typeof error.code === "string" && "syscall" in error) {
    return new StorageError("IO", `${error.code}: ${error.message}`, { cause: error });
  }
  return undefined;
}

function makeHandlers(options: StorageProgramOptions): Handlers {
  const { store, epochs, auth, counters } = options;
  const gate = counters.gate;
  // Each handler calls into the store before its first await, so a request takes its place in the
  // chunk's queue in the order the connection delivered it.
  const owner =
    (volumeId: string, epoch: number): Admission =>
    (work) =>
      epochs.guard(volumeId, epoch, work);
  return {
    NULL: async () => undefined,
    HELLO: async (args, call) => auth.hello(call.connectionId, args.clientNonce),
    PROVE: async (args, call) => {
      if (!auth.prove(call.connectionId, args.clientProof)) {
        throw new StorageError("UNAUTHENTICATED", "the proof does not answer this connection's challenge");
      }
      return undefined;
    },
    // Epoch 0: a volume being made, before it has an owner.
    CREATE_CHUNK: (a) =>
      done(
        a.ownerEpoch === 0
          ? store.create(a.chunk)
          : store.create(a.chunk, owner(a.chunk.volumeId, a.ownerEpoch)),
      ),
    READ: async (a) => {
      // Epoch 0: a reader that owns nothing (a copy, a check) is not fenced, and waits for clients:
      // it is the balancer's own traffic, not a client's load.
      if (a.ownerEpoch === 0) {
        return gate.background(async () => {
          const result = await store.read(a.chunk, a.blockOffset, a.blockCount);
          counters.readBytes += result.data.length;
          return result;
        });
      }
      const startedAt = performance.now();
      const result = await gate.foreground(() =>
        store.read(a.chunk, a.blockOffset, a.blockCount, owner(a.chunk.volumeId, a.ownerEpoch)),
      );
      counters.readBytes += result.data.length;
      counters.load.record(
        "read",
        a.chunk,
        a.blockOffset,
        a.blockCount,
        result.data.length,
        performance.now() - startedAt,
      );
      return result;
    },
    WRITE: async (a) => {
      checkWrite(a);
      const startedAt = performance.now();
      const write = () =>
        store.write(a.chunk, a.blockOffset, a.data, a.checksums, owner(a.chunk.volumeId, a.ownerEpoch));
      const held = options.hooks?.duringClientWrite;
      // Without the hook the write still reaches the store before the handler's first await.
      await gate.foreground(held === undefined ? write : () => held(a.chunk).then(write));
      counters.writtenBytes += a.data.length;
      const blocks = a.data.length / BLOCK_BYTES;
      counters.load.record(
        "write",
        a.chunk,
        a.blockOffset,
        blocks,
        a.data.length,
        performance.now() - startedAt,
      );
      return undefined;
    },
    FLUSH: async (a) => {
      if (a.ownerEpoch === 0) throw invalid("FLUSH needs an owner epoch (>= 1)");
      return done(
        gate.foreground(() => epochs.guard(a.volumeId, a.ownerEpoch, () => store.flush(a.volumeId))),
      );
    },
    FENCE: async (a) => {
      if (a.ownerEpoch === 0) throw invalid("FENCE needs an owner epoch (>= 1)");
      return done(epochs.fence(a.volumeId, a.ownerEpoch));
    },
    OWNER_EPOCH: async (a) => epochs.current(a.volumeId),
    // A move's own steps wait for the clients like its copies do: each ends in an fsync (the new
    // file and its directory, the filled chunk, the directory after a drop) that holds one of the
    // few file-system threads a client's write needs, for as long as the disk takes. Four moves
    // ending their fills at once held all four for 36 ms, and every client write waited.
    BEGIN_FILL: (a) => done(gate.background(() => store.beginFill(a.chunk, a.generation))),
    COPY_FROM: (a) => copyFrom(options, a),
    END_FILL: (a) => done(gate.background(() => store.endFill(a.chunk, a.generation))),
    // Not gated: a verification compares the source's and the copy's checksums, which must be taken
    // close together under client writes; delayed apart they differ and restart the copy.
    CHECKSUMS: (a) => store.checksums(a.chunk, a.blockCount),
    DROP_CHUNK: (a) => done(gate.background(() => store.drop(a.chunk))),
    STATS: async () => options.stats(),
  };
}

/** A procedure whose result is its status alone. */
async function done(work: Promise<void>): Promise<undefined> {
  await work;
  return undefined;
}

function checkWrite(a: WriteArgs): void {
  if (a.ownerEpoch === 0) throw invalid("WRITE needs an owner epoch (>= 1)");
  const bad = firstBadBlock(a.data, a.checksums);
  // The client's CRCs are what gets stored: a block that does not match them was damaged on the way.
  if (bad >= 0)
    throw new StorageError("UNAVAILABLE", `block ${a.blockOffset + bad} arrived damaged; send it again`);
}

/** Reads the range from the source (not fenced, owner epoch 0), then writes what is not fresh. */
async function copyFrom(options: StorageProgramOptions, a: CopyFromArgs): Promise<number> {
  if (a.sourceServerId === options.serverId) throw invalid("a chunk cannot be copied from its own server");
  options.store.checkFilling(a.chunk, a.generation);
  const source = options.peers.clientFor(a.sourceServerId);
  let blocks: BlockData;
  try {
    blocks = await source.readBlocks(a.chunk, 0, a.blockOffset, a.blockCount);
  } catch (error) {
    if (!(error instanceof StorageError)) throw error;
    throw new StorageError(error.code, `copy source ${a.sourceServerId}: ${error.message}`, {
      cause: error,
      ...(error.blockIndex === undefined ? {} : { blockIndex: error.blockIndex }),
    });
  }
  await options.hooks?.afterCopySourceRead?.(a.chunk, a.blockOffset, a.blockCount);
  // Only the write waits here (the read waited at the source): holding this server's background
  // slot across a read from a peer that holds its own slots for a read from here would deadlock.
  const written = await options.counters.gate.background(() =>
    options.store.writeCopy(a.chunk, a.generation, a.blockOffset, blocks.data, blocks.checksums),
  );
  options.counters.writtenBytes += written * BLOCK_BYTES;
  return written;
}
