import type { IKeyValue } from "etcd3";
import { assert } from "../util/assert.ts";
import type { KeyValue, LeaseId } from "./types.ts";

/** etcd's "no lease" and "no such revision": its int64 fields arrive as decimal strings. */
const NONE = "0";

/**
 * Turns an etcd int64 (a decimal string, as etcd3 decodes them) into a number. Revisions, versions and
 * TTLs stay far below 2^53; one that does not is a bug or a corrupt reply, not a case to handle.
 */
export function toNumber(value: string, field: string): number {
  const parsed = Number(value);
  assert(Number.isSafeInteger(parsed), `etcd sent a ${field} that is not a safe integer: ${value}`);
  return parsed;
}

/** The key range one byte past every key that starts with `prefix` (etcd's `range_end`). */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  // Every byte is 0xff (or there are none): "\0" as range_end means "to the end of the key space".
  return Buffer.from([0]);
}

/**
 * Keys as etcd stores them: the store's namespace, then the caller's key, in UTF-8. Callers never
 * see the namespace, so several clusters or test runs can share one etcd without seeing each other.
 */
export class EtcdKeys {
  private readonly namespace: string;
  constructor(namespace: string) {
    this.namespace = namespace;
  }

  encode(key: string): Buffer {
    return Buffer.from(this.namespace + key, "utf8");
  }

  /** `key` and `range_end` for every key under `prefix` (the whole namespace when it is empty). */
  range(prefix: string): { key: Buffer; range_end: Buffer } {
    const key = this.encode(prefix);
    // An empty key means "from the start of the key space" only together with range_end "\0".
    return { key: key.length === 0 ? Buffer.from([0]) : key, range_end: prefixEnd(key) };
  }

  decode(key: Buffer): string {
    const text = key.toString("utf8");
    assert(text.startsWith(this.namespace), `etcd returned a key outside the namespace: ${text}`);
    return text.slice(this.namespace.length);
  }

  keyValue(kv: IKeyValue): KeyValue {
    return {
      key: this.decode(kv.key),
      // A copy: the Buffer etcd3 hands over is a view into the whole gRPC message, which it would pin.
      value: new Uint8Array(kv.value),
      createRevision: toNumber(kv.create_revision, "create_revision"),
      modRevision: toNumber(kv.mod_revision, "mod_revision"),
      version: toNumber(kv.version, "version"),
      lease: leaseOf(kv.lease),
    };
  }
}

function leaseOf(lease: string): LeaseId | undefined {
  return lease === NONE || lease === "" ? undefined : lease;
}

/** A Uint8Array as a Buffer over the same memory, for etcd3's requests (no copy). */
export function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
