import assert from "node:assert/strict";
import { test } from "node:test";
import {
  AuthFlavor,
  AuthStat,
  type AuthSys,
  type DecodedCall,
  decodeAuthSys,
  decodeCall,
  decodeReply,
  encodeAuthSys,
  encodeCall,
  encodeRecord,
  encodeReply,
  encodeReplyRecord,
  type ReplyToEncode,
  RpcReplyError,
  resultsOf,
} from "../../../src/rpc/index.ts";
import { XdrError, XdrWriter } from "../../../src/xdr/index.ts";

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(chunks));
}

const SYS: AuthSys = { stamp: 77, machineName: "client-1", uid: 1000, gid: 100, gids: [100, 4, 27] };
const CALL = { xid: 0xdeadbeef, program: 400_000, version: 3, procedure: 9 };

function words(...values: number[]): Uint8Array {
  const writer = new XdrWriter();
  for (const value of values) writer.u32(value);
  return writer.bytes();
}

function authSysBody(build: (writer: XdrWriter) => void): Uint8Array {
  const writer = new XdrWriter();
  build(writer);
  return writer.bytes();
}

function decodedAuthError(decoded: DecodedCall): number {
  assert.equal(decoded.kind, "auth-error", `expected an AUTH_ERROR, got ${decoded.kind}`);
  return decoded.kind === "auth-error" ? decoded.stat : -1;
}

test("call: AUTH_SYS call round trip, arguments left positioned for the procedure", () => {
  const record = concat(encodeCall({ ...CALL, credential: { flavor: "sys", sys: SYS } }, [words(5, 6)]));
  const decoded = decodeCall(record);
  assert.equal(decoded.kind, "call");
  if (decoded.kind !== "call") return;
  assert.equal(decoded.xid, CALL.xid);
  assert.equal(decoded.program, CALL.program);
  assert.equal(decoded.version, CALL.version);
  assert.equal(decoded.procedure, CALL.procedure);
  assert.deepEqual(decoded.credential, { flavor: "sys", sys: SYS });
  assert.equal(decoded.args.u32(), 5);
  assert.equal(decoded.args.u32(), 6);
  assert.equal(decoded.args.remaining, 0);
});

test("call: AUTH_NONE is the default credential", () => {
  const decoded = decodeCall(concat(encodeCall(CALL, [])));
  assert.equal(decoded.kind, "call");
  assert.deepEqual(decoded.kind === "call" && decoded.credential, { flavor: "none" });
});

test("call: rpcvers other than 2 is RPC_MISMATCH, whatever follows", () => {
  const record = concat(encodeCall({ ...CALL, rpcVersion: 3 }, []));
  assert.deepEqual(decodeCall(record), { kind: "rpc-mismatch", xid: CALL.xid, rpcVersion: 3 });
  assert.deepEqual(decodeCall(words(1, 0, 1)), { kind: "rpc-mismatch", xid: 1, rpcVersion: 1 });
});

test("call: what is not a call header gets no answer", () => {
  const cases: [string, Uint8Array][] = [
    ["empty record", new Uint8Array(0)],
    ["xid only", words(1)],
    ["a REPLY", concat(encodeReply(1, { kind: "proc-unavail" }))],
    ["msg_type 7", words(1, 7, 2, 1, 1, 1, 0, 0, 0, 0)],
    ["no rpcvers", words(1, 0)],
    ["cut inside the program numbers", words(1, 0, 2, 100_003, 3)],
  ];
  for (const [what, record] of cases) {
    assert.equal(decodeCall(record).kind, "unparseable", what);
  }
});

test("call: credentials that are not taken are AUTH_ERROR(BADCRED)", () => {
  const cases: [string, number, Uint8Array][] = [
    ["unknown flavor (RPCSEC_GSS)", 6, new Uint8Array(8)],
    ["AUTH_NONE with a body", AuthFlavor.NONE, new Uint8Array(4)],
    ["AUTH_SYS with trailing bytes", AuthFlavor.SYS, concat([encodeAuthSys(SYS), new Uint8Array(4)])],
    ["AUTH_SYS cut short", AuthFlavor.SYS, encodeAuthSys(SYS).subarray(0, 12)],
    [
      "AUTH_SYS with 17 gids",
      AuthFlavor.SYS,
      authSysBody((w) => {
        w.u32(1).string("m").u32(0).u32(0).u32(17);
        for (let i = 0; i < 17; i++) w.u32(i);
      }),
    ],
    [
      "AUTH_SYS machine name of 256 bytes",
      AuthFlavor.SYS,
      authSysBody((w) => w.u32(1).string("m".repeat(256)).u32(0).u32(0).u32(0)),
    ],
  ];
  for (const [what, flavor, body] of cases) {
    const record = concat(encodeCall({ ...CALL, credential: { flavor, body } }, []));
    assert.equal(decodedAuthError(decodeCall(record)), AuthStat.BADCRED, what);
  }
});

test("call: a credential body over 400 bytes, or cut short, is BADCRED; a bad verifier is BADVERF", () => {
  const oversize = concat([words(1, 0, 2, 1, 1, 1, AuthFlavor.NONE, 401), new Uint8Array(404), words(0, 0)]);
  assert.equal(decodedAuthError(decodeCall(oversize)), AuthStat.BADCRED);
  assert.equal(decodedAuthError(decodeCall(words(1, 0, 2, 1, 1, 1, AuthFlavor.SYS))), AuthStat.BADCRED);
  const noVerifier = words(1, 0, 2, 1, 1, 1, AuthFlavor.NONE, 0);
  assert.equal(decodedAuthError(decodeCall(noVerifier)), AuthStat.BADVERF);
  const sysVerifier = concat(
    encodeCall({ ...CALL, verifier: { flavor: AuthFlavor.SYS, body: new Uint8Array(0) } }, []),
  );
  assert.equal(decodedAuthError(decodeCall(sysVerifier)), AuthStat.BADVERF);
});

test("AUTH_SYS: the largest body the bounds allow round-trips", () => {
  const largest: AuthSys = {
    stamp: 0xffffffff,
    machineName: "h".repeat(255),
    uid: 0xffffffff,
    gid: 0,
    gids: Array.from({ length: 16 }, (_, i) => i * 1000),
  };
  const body = encodeAuthSys(largest);
  assert.ok(body.length <= 400, `an AUTH_SYS body within the limits fits an opaque_auth (${body.length})`);
  assert.deepEqual(decodeAuthSys(body), largest);
  assert.throws(() => decodeAuthSys(concat([body, new Uint8Array(4)])), XdrError);
});

test("reply: every answer encodes and decodes to itself", () => {
  const body = [words(1, 2), words(3)];
  const cases: [ReplyToEncode, object][] = [
    [{ kind: "prog-unavail" }, { kind: "prog-unavail" }],
    [
      { kind: "prog-mismatch", low: 2, high: 4 },
      { kind: "prog-mismatch", low: 2, high: 4 },
    ],
    [{ kind: "proc-unavail" }, { kind: "proc-unavail" }],
    [{ kind: "garbage-args" }, { kind: "garbage-args" }],
    [{ kind: "system-error" }, { kind: "system-error" }],
    [{ kind: "rpc-mismatch" }, { kind: "rpc-mismatch", low: 2, high: 2 }],
    [
      { kind: "auth-error", stat: AuthStat.TOOWEAK },
      { kind: "auth-error", stat: AuthStat.TOOWEAK },
    ],
  ];
  for (const [sent, expected] of cases) {
    const reply = decodeReply(concat(encodeReply(7, sent)));
    const { verifier, ...rest } = { verifier: undefined, ...reply };
    assert.deepEqual(rest, { xid: 7, ...expected }, sent.kind);
    if (verifier !== undefined)
      assert.deepEqual(verifier, { flavor: AuthFlavor.NONE, body: new Uint8Array(0) });
  }
  const encoded = encodeReply(8, { kind: "success", body });
  assert.equal(encoded[1], body[0], "the body chunks are passed through, not copied");
  const success = decodeReply(concat(encoded));
  const results = resultsOf(success);
  assert.deepEqual([results.u32(), results.u32(), results.u32()], [1, 2, 3]);
  assert.equal(results.remaining, 0);
});

test("reply: wire layout of an accepted SUCCESS and a denied AUTH_ERROR (RFC 5531 section 9)", () => {
  assert.deepEqual(concat(encodeReply(5, { kind: "success", body: [] })), words(5, 1, 0, 0, 0, 0));
  assert.deepEqual(
    concat(encodeReply(5, { kind: "auth-error", stat: AuthStat.BADCRED })),
    words(5, 1, 1, 1, 1),
  );
  assert.deepEqual(concat(encodeReply(5, { kind: "rpc-mismatch" })), words(5, 1, 1, 0, 2, 2));
  assert.deepEqual(
    concat(encodeReply(5, { kind: "prog-mismatch", low: 1, high: 3 })),
    words(5, 1, 0, 0, 0, 2, 1, 3),
  );
});

test("reply: malformed replies are XdrErrors; resultsOf refuses what is not SUCCESS", () => {
  assert.throws(() => decodeReply(words(1)), XdrError);
  assert.throws(() => decodeReply(concat(encodeCall(CALL, []))), XdrError, "a CALL is not a reply");
  assert.throws(() => decodeReply(words(1, 1, 2)), XdrError, "reply_stat 2");
  assert.throws(() => decodeReply(words(1, 1, 0, 0, 0, 9)), XdrError, "accept_stat 9");
  assert.throws(() => decodeReply(words(1, 1, 0, 0, 0, 3, 0)), XdrError, "trailing bytes after PROC_UNAVAIL");
  const reply = decodeReply(concat(encodeReply(3, { kind: "garbage-args" })));
  assert.throws(
    () => resultsOf(reply),
    (error) => error instanceof RpcReplyError && error.reply === reply,
  );
});

test("reply: encodeReplyRecord is encodeReply with the record mark in the header's buffer", () => {
  const body = [words(1, 2), new Uint8Array(0), words(3)];
  const replies: ReplyToEncode[] = [
    { kind: "success", body },
    { kind: "prog-mismatch", low: 1, high: 3 },
    { kind: "auth-error", stat: AuthStat.BADCRED },
  ];
  for (const reply of replies) {
    const record = encodeReplyRecord(9, reply);
    assert.deepEqual(concat(record), concat(encodeRecord(encodeReply(9, reply))), reply.kind);
    if (reply.kind === "success") assert.equal(record[1], body[0], "the body is passed through, not copied");
  }
});
