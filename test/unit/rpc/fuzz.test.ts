import assert from "node:assert/strict";
import { test } from "node:test";
import {
  type AuthSys,
  type Credential,
  encodeCall,
  encodeFragments,
  encodeRecord,
  type OpaqueAuth,
  RPC_RECORD_BYTES_MAX,
  RpcClient,
  RpcServer,
} from "../../../src/rpc/index.ts";
import { SeededRandom } from "../../../src/util/random.ts";
import { RawPeer, turnsUntil } from "../../support/raw-peer.ts";
import { echo, TOY_PROGRAM, ToyProcedure, ToyState, toyPrograms } from "./toy-program.ts";

const SEED = Number(process.env.FUZZ_SEED ?? 20_261_123);
const CONNECTION_COUNT = 600;
const PARALLEL_CONNECTIONS = 4;

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(chunks));
}

function pick<T>(random: SeededRandom, choices: readonly T[]): T {
  return choices[random.int(choices.length)]!;
}

/** What one fuzz connection sends, and the xids it must get replies to (undefined: anything goes). */
interface FuzzCase {
  readonly kind: string;
  readonly bytes: Uint8Array;
  readonly expectedXids: readonly number[] | undefined;
}

function randomCredential(random: SeededRandom): { credential: Credential | OpaqueAuth; valid: boolean } {
  switch (random.int(3)) {
    case 0:
      return { credential: { flavor: "none" }, valid: true };
    case 1: {
      const sys: AuthSys = {
        stamp: random.nextU32(),
        machineName: "fuzz".repeat(random.int(10)),
        uid: random.nextU32(),
        gid: random.nextU32(),
        gids: Array.from({ length: random.int(17) }, () => random.nextU32()),
      };
      return { credential: { flavor: "sys", sys }, valid: true };
    }
    default:
      // Flavors from 2 up are not taken, whatever the body.
      return {
        credential: { flavor: 2 + random.int(10), body: random.bytes(random.int(420)) },
        valid: false,
      };
  }
}

/** A well-framed call to a random target; returns its record and whether the server will answer. */
function randomCall(random: SeededRandom, xid: number): { record: Uint8Array; answered: boolean } {
  const program = random.int(4) === 0 ? random.nextU32() : TOY_PROGRAM;
  const version = pick(random, [1, 2, 3, random.nextU32()]);
  const procedure = random.int(5) === 0 ? random.nextU32() : random.int(7);
  const rpcVersion = random.int(10) === 0 ? random.nextU32() : 2;
  const { credential, valid } = randomCredential(random);
  const args = random.bytes(random.int(64));
  const message = concat(encodeCall({ xid, program, version, procedure, credential, rpcVersion }, [args]));
  const dispatched = rpcVersion === 2 && valid && program === TOY_PROGRAM && (version === 1 || version === 3);
  const answered = !(dispatched && procedure === ToyProcedure.DROP);
  if (random.int(3) > 0) return { record: concat(encodeRecord([message])), answered };
  // The same call in fragments cut at random places.
  const cuts = Array.from({ length: random.int(6) }, () => random.int(message.length + 1)).sort(
    (a, b) => a - b,
  );
  const bounds = [0, ...cuts, message.length];
  const fragments = bounds.slice(1).map((end, i) => message.subarray(bounds[i], end));
  return { record: encodeFragments(fragments), answered };
}

function wellFormedCalls(random: SeededRandom, caseIndex: number): { bytes: Uint8Array; expected: number[] } {
  const records: Uint8Array[] = [];
  const expected: number[] = [];
  const count = 1 + random.int(4);
  for (let i = 0; i < count; i++) {
    const xid = (caseIndex * 16 + i) >>> 0;
    const { record, answered } = randomCall(random, xid);
    records.push(record);
    if (answered) expected.push(xid);
  }
  return { bytes: concat(records), expected };
}

function fragmentHeader(lengthAndLastBit: number): Uint8Array {
  const header = new Uint8Array(4);
  new DataView(header.buffer).setUint32(0, lengthAndLastBit >>> 0);
  return header;
}

function fuzzCase(random: SeededRandom, caseIndex: number): FuzzCase {
  const choice = random.int(8);
  switch (choice) {
    case 0: {
      const { bytes, expected } = wellFormedCalls(random, caseIndex);
      return { kind: "calls", bytes, expectedXids: expected };
    }
    case 1: {
      const { bytes } = wellFormedCalls(random, caseIndex);
      const mutated = bytes.slice();
      const flips = 1 + random.int(8);
      for (let i = 0; i < flips; i++) mutated[random.int(mutated.length)] = random.int(256);
      return { kind: "mutated calls", bytes: mutated, expectedXids: undefined };
    }
    case 2: {
      const { bytes } = wellFormedCalls(random, caseIndex);
      return {
        kind: "truncated calls",
        bytes: bytes.subarray(0, random.int(bytes.length)),
        expectedXids: undefined,
      };
    }
    case 3:
      return { kind: "garbage", bytes: random.bytes(random.int(300)), expectedXids: undefined };
    case 4: {
      const length = random.nextU32();
      return {
        kind: "random fragment length",
        bytes: concat([fragmentHeader(length), random.bytes(random.int(200))]),
        expectedXids: undefined,
      };
    }
    case 5: {
      const length = RPC_RECORD_BYTES_MAX + 1 + random.int(1000);
      return { kind: "over the bound", bytes: fragmentHeader(0x8000_0000 + length), expectedXids: [] };
    }
    case 6: {
      const empties = Array.from({ length: random.int(1500) }, () => new Uint8Array(0));
      const tail = random.bytes(random.int(40));
      return { kind: "empty fragments", bytes: encodeFragments([...empties, tail]), expectedXids: undefined };
    }
    default: {
      const body = random.bytes(random.int(100));
      return { kind: "framed garbage", bytes: concat(encodeRecord([body])), expectedXids: undefined };
    }
  }
}

/** Sends one case on its own connection, half-closes, and checks what came back until the server closed. */
async function runCase(port: number, fuzz: FuzzCase, where: string): Promise<void> {
  const peer = await RawPeer.connect(port, "127.0.0.1", { allowHalfOpen: true });
  await peer.send(fuzz.bytes);
  peer.socket.end();
  await peer.closed;
  assert.equal(peer.malformed.length, 0, `${where}: every reply is a well-formed RPC reply`);
  if (fuzz.expectedXids !== undefined) {
    const got = peer.replies.map((reply) => reply.xid).sort((a, b) => a - b);
    assert.deepEqual(
      got,
      [...fuzz.expectedXids].sort((a, b) => a - b),
      `${where}: one reply per answered call`,
    );
  }
}

test(`fuzz: random and mutated records never stop the server; a bystander's calls all succeed (seed ${SEED})`, async () => {
  const state = new ToyState();
  state.openGate();
  await using server = new RpcServer({ programs: toyPrograms(state), name: "fuzz" });
  const { port } = await server.listen("127.0.0.1", 0);
  await using bystander = await RpcClient.connect("127.0.0.1", port);
  let fuzzing = true;
  let bystanderCalls = 0;
  const bystanderWork = (async () => {
    const payload = Uint8Array.from({ length: 512 }, (_, i) => i & 0xff);
    while (fuzzing) {
      assert.deepEqual(await echo(bystander, payload), payload);
      bystanderCalls++;
    }
  })();

  const random = new SeededRandom(SEED);
  const kinds = new Map<string, number>();
  let next = 0;
  const worker = async () => {
    while (next < CONNECTION_COUNT) {
      const caseIndex = next++;
      const fuzz = fuzzCase(random, caseIndex);
      kinds.set(fuzz.kind, (kinds.get(fuzz.kind) ?? 0) + 1);
      await runCase(port, fuzz, `seed ${SEED} case ${caseIndex} (${fuzz.kind})`);
    }
  };
  try {
    await Promise.all(Array.from({ length: PARALLEL_CONNECTIONS }, worker));
  } finally {
    fuzzing = false;
  }
  await bystanderWork;
  assert.ok(bystanderCalls > 0, "the bystander got calls through during the fuzzing");
  assert.equal(kinds.size, 8, `every kind of case ran: ${[...kinds.keys()].join(", ")}`);
  await turnsUntil(() => server.connectionCount === 1);
  await using late = await RpcClient.connect("127.0.0.1", port);
  assert.deepEqual(await echo(late, Uint8Array.of(1)), Uint8Array.of(1));
});
