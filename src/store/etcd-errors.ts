import { isBrokenCircuitError } from "cockatiel";
import { ClientClosedError, castGrpcError, EtcdLeaseInvalidError, isRecoverableError } from "etcd3";
import { StoreError } from "./types.ts";

/**
 * What an etcd3 failure means to a caller of the store. etcd3 has already sorted gRPC's errors into
 * classes (by status code, and by etcd's message for a lost lease), so this goes by class only
 * (after classifying a stream's raw gRPC error the same way):
 * - connection refused or lost, deadline exceeded, no leader, too many requests: UNAVAILABLE (etcd3
 *   marks each of these "recoverable"; the call may be retried with backoff);
 * - a lease etcd does not know (expired or revoked): LEASE_LOST;
 * - the client closed under the call: CLOSED;
 * - anything else (a malformed or refused request) is INVALID: retrying it will not help.
 */
export function toStoreError(thrown: unknown, what: string): StoreError {
  if (thrown instanceof StoreError) return thrown;
  // Unary calls come back classified; a stream's error event carries gRPC's plain Error with a code.
  const error = thrown instanceof Error ? castGrpcError(thrown) : thrown;
  const message = `${what}: ${error instanceof Error ? error.message : String(error)}`;
  if (error instanceof EtcdLeaseInvalidError) return new StoreError("LEASE_LOST", message, { cause: error });
  if (error instanceof ClientClosedError) return new StoreError("CLOSED", message, { cause: error });
  // The store configures no circuit breaker, but a broken circuit means "not now" wherever it comes from.
  if (isBrokenCircuitError(error) || (error instanceof Error && isRecoverableError(error))) {
    return new StoreError("UNAVAILABLE", message, { cause: error });
  }
  return new StoreError("INVALID", message, { cause: error });
}
