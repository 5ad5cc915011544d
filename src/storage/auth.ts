/**
 * Mutual authentication of storage connections with the cluster secret, which never crosses the wire.
 *
 *   client → HELLO(clientNonce)
 *   server ← serverId, serverNonce, serverProof = HMAC(secret, "server" | serverId | clientNonce | serverNonce)
 *   client → PROVE(clientProof = HMAC(secret, "client" | serverId | clientNonce | serverNonce))
 *
 * The client checks serverProof (a member of the cluster answered, and it is the server it meant to
 * reach: the id is under the proof); the server checks clientProof. Both nonces are fresh per
 * connection, so a recorded handshake proves nothing on another connection. What this does not give:
 * integrity or secrecy of the requests that follow. Someone able to inject into an authenticated TCP
 * connection on the storage network can still act on it; that network is meant to be private.
 */
import { createHmac, createSecretKey, type KeyObject, randomBytes, timingSafeEqual } from "node:crypto";
import { RPC_CONNECTIONS_MAX } from "../rpc/server.ts";
import { assert } from "../util/assert.ts";
import { AUTH_NONCE_BYTES, AUTH_PROOF_BYTES, type HelloResult } from "./protocol.ts";
import { StorageError } from "./types.ts";

export const SECRET_BYTES_MIN = 32;
/** A secret longer than this is surely not one (a wrong file). */
export const SECRET_BYTES_MAX = 1024;

const LABEL = "flotilla-storage-v1";

/** The cluster secret as an HMAC key, made once. */
export class ClusterSecret {
  private readonly key: KeyObject;

  constructor(secret: Uint8Array) {
    if (secret.length < SECRET_BYTES_MIN || secret.length > SECRET_BYTES_MAX) {
      throw new RangeError(
        `a cluster secret is ${SECRET_BYTES_MIN} to ${SECRET_BYTES_MAX} bytes, not ${secret.length}`,
      );
    }
    this.key = createSecretKey(Buffer.from(secret));
  }

  serverProof(serverId: string, clientNonce: Uint8Array, serverNonce: Uint8Array): Uint8Array {
    return this.proof("server", serverId, clientNonce, serverNonce);
  }

  clientProof(serverId: string, clientNonce: Uint8Array, serverNonce: Uint8Array): Uint8Array {
    return this.proof("client", serverId, clientNonce, serverNonce);
  }

  private proof(
    role: string,
    serverId: string,
    clientNonce: Uint8Array,
    serverNonce: Uint8Array,
  ): Uint8Array {
    assert(clientNonce.length === AUTH_NONCE_BYTES, "client nonce length");
    assert(serverNonce.length === AUTH_NONCE_BYTES, "server nonce length");
    // Every field is fixed-length or prefixed by its length, so no two inputs share an encoding.
    const id = Buffer.from(serverId, "utf8");
    const mac = createHmac("sha256", this.key)
      .update(`${LABEL} ${role}\0`)
      .update(Buffer.from([id.length]))
      .update(id)
      .update(clientNonce)
      .update(serverNonce)
      .digest();
    assert(mac.length === AUTH_PROOF_BYTES, "HMAC-SHA256 is 32 bytes");
    return new Uint8Array(mac);
  }
}

export function newNonce(): Uint8Array {
  return new Uint8Array(randomBytes(AUTH_NONCE_BYTES));
}

/** Constant-time comparison of a proof received with the one expected. */
export function proofMatches(expected: Uint8Array, received: Uint8Array): boolean {
  return expected.length === received.length && timingSafeEqual(expected, received);
}

/**
 * The client's check of the server's HELLO answer. Throws UNAVAILABLE when another server answers
 * at the address (the directory was stale), UNAUTHENTICATED when the server cannot prove the secret.
 */
export function checkServerHello(
  secret: ClusterSecret,
  expectedServerId: string,
  clientNonce: Uint8Array,
  hello: HelloResult,
): void {
  if (hello.serverId !== expectedServerId) {
    throw new StorageError(
      "UNAVAILABLE",
      `storage server ${hello.serverId} answered where ${expectedServerId} was expected`,
    );
  }
  const expected = secret.serverProof(hello.serverId, clientNonce, hello.serverNonce);
  if (!proofMatches(expected, hello.serverProof)) {
    throw new StorageError(
      "UNAUTHENTICATED",
      `storage server ${expectedServerId} did not prove the cluster secret`,
    );
  }
}

type ConnectionAuth =
  | { readonly stage: "challenged"; readonly clientNonce: Uint8Array; readonly serverNonce: Uint8Array }
  | { readonly stage: "authenticated" };

const AUTHENTICATED: ConnectionAuth = { stage: "authenticated" };

/**
 * The server's side: the handshake state of each connection, by RpcCall.connectionId. Bounded by
 * the server's connection limit; the RPC server reports closed connections through `forget`.
 */
export class ServerAuthenticator {
  private readonly connections = new Map<number, ConnectionAuth>();
  private readonly secret: ClusterSecret;
  private readonly serverId: string;
  private readonly connectionsMax: number;

  constructor(secret: ClusterSecret, serverId: string, connectionsMax = RPC_CONNECTIONS_MAX) {
    assert(Number.isInteger(connectionsMax) && connectionsMax >= 1, "connectionsMax >= 1");
    this.secret = secret;
    this.serverId = serverId;
    this.connectionsMax = connectionsMax;
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Step 1: a fresh challenge for the connection (a HELLO on an authenticated connection starts over). */
  hello(connectionId: number, clientNonce: Uint8Array): HelloResult {
    this.connections.delete(connectionId);
    if (this.connections.size >= this.connectionsMax) this.evictOldestChallenge();
    const serverNonce = newNonce();
    this.connections.set(connectionId, { stage: "challenged", clientNonce, serverNonce });
    assert(this.connections.size <= this.connectionsMax, "authentication state is bounded");
    return {
      serverId: this.serverId,
      serverNonce,
      serverProof: this.secret.serverProof(this.serverId, clientNonce, serverNonce),
    };
  }

  /** Step 2: true if the proof answers this connection's challenge. A challenge is answered once. */
  prove(connectionId: number, clientProof: Uint8Array): boolean {
    const state = this.connections.get(connectionId);
    if (state?.stage !== "challenged") return false;
    const expected = this.secret.clientProof(this.serverId, state.clientNonce, state.serverNonce);
    if (!proofMatches(expected, clientProof)) {
      this.connections.delete(connectionId);
      return false;
    }
    this.connections.set(connectionId, AUTHENTICATED);
    return true;
  }

  isAuthenticated(connectionId: number): boolean {
    return this.connections.get(connectionId)?.stage === "authenticated";
  }

  forget(connectionId: number): void {
    this.connections.delete(connectionId);
  }

  private evictOldestChallenge(): void {
    // Map order is insertion order: the first challenge found is the oldest. Authenticated
    // connections are never evicted; the RPC server's own connection bound keeps them in check.
    for (const [connectionId, state] of this.connections) {
      if (state.stage === "challenged") {
        this.connections.delete(connectionId);
        return;
      }
    }
    throw new StorageError("UNAVAILABLE", `${this.connections.size} connections are authenticated already`);
  }
}
