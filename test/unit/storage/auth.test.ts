import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { ClusterSecret, checkServerHello, newNonce, ServerAuthenticator } from "../../../src/storage/auth.ts";
import { rejectsWith } from "../../support/storage-process.ts";

const secret = new ClusterSecret(new Uint8Array(randomBytes(32)));
const otherSecret = new ClusterSecret(new Uint8Array(randomBytes(32)));

/** A client's whole handshake on `connectionId`, returning what the server said and the proof sent. */
function handshake(auth: ServerAuthenticator, connectionId: number, clientSecret = secret) {
  const clientNonce = newNonce();
  const hello = auth.hello(connectionId, clientNonce);
  checkServerHello(secret, "s1", clientNonce, hello);
  const clientProof = clientSecret.clientProof("s1", clientNonce, hello.serverNonce);
  return { clientNonce, hello, clientProof, accepted: auth.prove(connectionId, clientProof) };
}

test("auth: a client with the secret authenticates its connection, and only that connection", () => {
  const auth = new ServerAuthenticator(secret, "s1");
  assert.equal(handshake(auth, 1).accepted, true);
  assert.equal(auth.isAuthenticated(1), true);
  assert.equal(auth.isAuthenticated(2), false);
  auth.forget(1);
  assert.equal(auth.isAuthenticated(1), false);
  assert.equal(auth.connectionCount, 0);
});

test("auth: a wrong secret fails on both sides", () => {
  const auth = new ServerAuthenticator(secret, "s1");
  assert.equal(handshake(auth, 1, otherSecret).accepted, false);
  assert.equal(auth.isAuthenticated(1), false);
  // The client sees an impostor server: its proof is made with another secret.
  const impostor = new ServerAuthenticator(otherSecret, "s1");
  const clientNonce = newNonce();
  assert.throws(
    () => checkServerHello(secret, "s1", clientNonce, impostor.hello(1, clientNonce)),
    rejectsWith("UNAUTHENTICATED"),
  );
  // Another server at the address the client expected s1 at.
  const other = new ServerAuthenticator(secret, "s2");
  assert.throws(
    () => checkServerHello(secret, "s1", clientNonce, other.hello(1, clientNonce)),
    rejectsWith("UNAVAILABLE"),
  );
});

test("auth: a recorded handshake is worthless on another connection, and a challenge is answered once", () => {
  const auth = new ServerAuthenticator(secret, "s1");
  const recorded = handshake(auth, 1);
  assert.equal(recorded.accepted, true);
  // Replay: the same client nonce, then the recorded proof. The server's nonce is new, so it fails.
  const replayed = auth.hello(2, recorded.clientNonce);
  assert.notDeepEqual(replayed.serverNonce, recorded.hello.serverNonce);
  assert.equal(auth.prove(2, recorded.clientProof), false);
  assert.equal(auth.isAuthenticated(2), false);
  // A proof with no challenge, or a second proof of a failed challenge, fails too.
  assert.equal(auth.prove(3, recorded.clientProof), false);
  assert.equal(auth.prove(2, recorded.clientProof), false);
});

test("auth: connection state is bounded; the oldest pending challenge goes first", () => {
  const auth = new ServerAuthenticator(secret, "s1", 3);
  assert.equal(handshake(auth, 1).accepted, true);
  const pending = auth.hello(2, newNonce());
  auth.hello(3, newNonce());
  auth.hello(4, newNonce());
  assert.equal(auth.connectionCount, 3);
  assert.equal(auth.isAuthenticated(1), true, "an authenticated connection is not evicted");
  assert.ok(pending.serverNonce.length === 32);
  assert.equal(auth.prove(2, new Uint8Array(32)), false, "connection 2's challenge was evicted");
  const full = new ServerAuthenticator(secret, "s1", 1);
  assert.equal(handshake(full, 1).accepted, true);
  assert.throws(() => full.hello(2, newNonce()), rejectsWith("UNAVAILABLE"));
});

test("auth: a secret shorter than 32 bytes is refused", () => {
  assert.throws(() => new ClusterSecret(new Uint8Array(31)), RangeError);
});
