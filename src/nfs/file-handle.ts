import { createHmac, createSecretKey, type KeyObject, timingSafeEqual } from "node:crypto";
import { FsError, type NodeRef } from "../fs/index.ts";
import { assertionFailed } from "../util/assert.ts";

const HANDLE_VERSION = 1;
const PAYLOAD_BYTES = 24;
const MAC_BYTES = 16;
export const FILE_HANDLE_BYTES = PAYLOAD_BYTES + MAC_BYTES;
/** Handles remembered as verified (and MACs as computed): the same directory's handle comes in every CREATE. */
const HANDLE_CACHE_ENTRIES_MAX = 16_384;
/** A per-vserver secret of at least this many bytes authenticates its handles. */
export const HANDLE_KEY_BYTES_MIN = 32;

/** What a handle names: an object of a volume of a vserver. */
export interface HandleTarget {
  readonly vserverId: number;
  readonly volumeId: number;
  readonly ref: NodeRef;
}

/**
 * File handles of 40 bytes: version, vserver, volume, inode and generation, then 16 bytes of
 * HMAC-SHA256 under the vserver's key. A handle that was altered, or made under another vserver's
 * key, fails the MAC and is BADHANDLE; one that verifies but names a deleted object is STALE (the
 * file system says so).
 */
export class FileHandleCodec {
  /** Made once: a raw key passed to createHmac is turned into a new KeyObject on every call. */
  private readonly key: KeyObject;

  constructor(key: Uint8Array) {
    if (!(key.length >= HANDLE_KEY_BYTES_MIN))
      assertionFailed(`a handle key needs ${HANDLE_KEY_BYTES_MIN} bytes`);
    this.key = createSecretKey(key);
  }

  /**
   * Handles already verified, keyed by all 40 bytes (so a hit is these exact bytes, MAC included),
   * and MACs already computed, keyed by the payload. Bounded; the oldest goes first.
   */
  private readonly verified = new Map<string, HandleTarget>();
  private readonly macs = new Map<string, Uint8Array>();

  private mac(payload: Uint8Array): Uint8Array {
    const key = latin1(payload);
    const known = this.macs.get(key);
    if (known !== undefined) return known;
    const mac = createHmac("sha256", this.key).update(payload).digest().subarray(0, MAC_BYTES);
    remember(this.macs, key, mac);
    return mac;
  }

  encode(target: HandleTarget): Uint8Array {
    const bytes = new Uint8Array(FILE_HANDLE_BYTES);
    const view = new DataView(bytes.buffer);
    view.setUint8(0, HANDLE_VERSION);
    view.setUint32(4, target.vserverId);
    view.setUint32(8, target.volumeId);
    view.setUint32(12, Math.floor(target.ref.ino / 0x1_0000_0000));
    view.setUint32(16, target.ref.ino >>> 0);
    view.setUint32(20, target.ref.gen);
    bytes.set(this.mac(bytes.subarray(0, PAYLOAD_BYTES)), PAYLOAD_BYTES);
    return bytes;
  }

  /** Verifies and parses a handle; throws FsError BADHANDLE for anything not made by this codec. */
  decode(bytes: Uint8Array): HandleTarget {
    if (bytes.length !== FILE_HANDLE_BYTES)
      throw new FsError("BADHANDLE", `file handle of ${bytes.length} bytes`);
    const whole = latin1(bytes);
    const known = this.verified.get(whole);
    if (known !== undefined) return known;
    const payload = bytes.subarray(0, PAYLOAD_BYTES);
    if (!timingSafeEqual(this.mac(payload), bytes.subarray(PAYLOAD_BYTES))) {
      throw new FsError("BADHANDLE", "file handle fails authentication");
    }
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (view.getUint8(0) !== HANDLE_VERSION)
      throw new FsError("BADHANDLE", "file handle of an unknown version");
    const target: HandleTarget = {
      vserverId: view.getUint32(4),
      volumeId: view.getUint32(8),
      ref: { ino: view.getUint32(12) * 0x1_0000_0000 + view.getUint32(16), gen: view.getUint32(20) },
    };
    remember(this.verified, whole, target);
    return target;
  }
}

function latin1(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1");
}

function remember<T>(cache: Map<string, T>, key: string, value: T): void {
  if (cache.size >= HANDLE_CACHE_ENTRIES_MAX) {
    const oldest = cache.keys().next();
    if (oldest.done !== true) cache.delete(oldest.value);
  }
  cache.set(key, value);
}
