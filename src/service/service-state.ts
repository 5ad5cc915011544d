/**
 * A vserver's NFS service state, kept in its service-state arena so that a live move carries it:
 * the write verifier, the client table (address, first and last seen, calls), MOUNT's list (each
 * record refers to its client's record), and the duplicate request cache's finished replies. The JS
 * maps here are only indexes over the arena; they are rebuilt from its records after a compaction
 * or on arrival at another node.
 */

import { DRC_BYTES_MAX_DEFAULT, DRC_ENTRIES_MAX_DEFAULT, type ReplyStore } from "../nfs/dup-cache.ts";
import type { MountEntry, MountList } from "../nfs/mount/mount-list.ts";
import { MOUNT_RECORDS_MAX } from "../nfs/mount/mount-list.ts";
import type { RpcOutcome } from "../rpc/types.ts";
import { assert } from "../util/assert.ts";
import {
  ARENA_PAGE_BYTES,
  ArenaFull,
  type ArenaManifest,
  type ArenaRecord,
  type ArenaRef,
  type ArenaStats,
  type PagePool,
  RECORD_PAYLOAD_BYTES_MAX,
  ServiceArena,
} from "./arena.ts";

export const RecordKind = { VERIFIER: 1, CLIENT: 2, MOUNT: 3, REPLY: 4 } as const;

/** Pages one vserver's state may hold by default: 48 MiB (the reply cache's 32 MiB and room). */
export const SERVICE_PAGES_MAX_DEFAULT = (48 * 1024 * 1024) / ARENA_PAGE_BYTES;
export const CLIENTS_MAX = 4096;
const ADDRESS_BYTES_MAX = 64;
const KEY_BYTES_MAX = 256;
const CLIENT_FIXED_BYTES = 24;

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

export interface ClientEntry {
  readonly address: string;
  readonly firstSeenMs: number;
  readonly lastSeenMs: number;
  readonly calls: number;
}

export interface ServiceStateStats extends ArenaStats {
  readonly clients: number;
  readonly mounts: number;
  readonly replies: number;
}

/** Clients seen by the vserver: one fixed-layout record each, counters updated in place. */
export class ArenaClientTable {
  private readonly index = new Map<string, ArenaRef>();
  /** Clients with a mount record, which must not be evicted (their records are referred to). */
  readonly pinned = new Set<string>();

  private readonly arena: ServiceArena;

  constructor(arena: ServiceArena) {
    this.arena = arena;
  }

  get size(): number {
    return this.index.size;
  }

  /** The client's record, made if new. Undefined when the table cannot take it (arena full). */
  ensure(address: string, nowMs: number = Date.now()): ArenaRef | undefined {
    const known = this.index.get(address);
    if (known !== undefined) return known;
    const name = utf8.encode(address.slice(0, ADDRESS_BYTES_MAX));
    if (this.index.size >= CLIENTS_MAX && !this.evictOne()) return undefined;
    let ref: ArenaRef;
    try {
      ref = this.arena.alloc(RecordKind.CLIENT, [], CLIENT_FIXED_BYTES + name.length);
    } catch (error) {
      if (error instanceof ArenaFull) return undefined;
      throw error;
    }
    const view = this.arena.bodyView(ref);
    view.setFloat64(0, nowMs, true);
    view.setFloat64(8, nowMs, true);
    view.setFloat64(16, 0, true);
    this.arena.body(ref).set(name, CLIENT_FIXED_BYTES);
    this.index.set(address, ref);
    return ref;
  }

  /** One call from `address`. */
  seen(address: string): void {
    const nowMs = Date.now();
    const ref = this.ensure(address, nowMs);
    if (ref === undefined) return;
    const view = this.arena.bodyView(ref);
    view.setFloat64(8, nowMs, true);
    view.setFloat64(16, view.getFloat64(16, true) + 1, true);
    this.arena.touch(ref);
  }

  addressOf(ref: ArenaRef): string {
    return fromUtf8.decode(this.arena.body(ref).subarray(CLIENT_FIXED_BYTES));
  }

  list(): ClientEntry[] {
    return [...this.index.entries()].map(([address, ref]) => {
      const view = this.arena.bodyView(ref);
      return {
        address,
        firstSeenMs: view.getFloat64(0, true),
        lastSeenMs: view.getFloat64(8, true),
        calls: view.getFloat64(16, true),
      };
    });
  }

  rebuild(records: readonly ArenaRecord[]): void {
    this.index.clear();
    for (const r of records)
      if (r.kind === RecordKind.CLIENT)
        this.index.set(fromUtf8.decode(r.body.subarray(CLIENT_FIXED_BYTES)), r.ref);
  }

  /** Drops the least recently seen client without mounts; false if every one has mounts. */
  private evictOne(): boolean {
    let oldest: { address: string; ref: ArenaRef; lastMs: number } | undefined;
    for (const [address, ref] of this.index) {
      if (this.pinned.has(address)) continue;
      const lastMs = this.arena.bodyView(ref).getFloat64(8, true);
      if (oldest === undefined || lastMs < oldest.lastMs) oldest = { address, ref, lastMs };
    }
    if (oldest === undefined) return false;
    this.arena.free(oldest.ref);
    this.index.delete(oldest.address);
    return true;
  }
}

/** MOUNT's records: each refers to its client's record and holds the path. */
export class ArenaMountList implements MountList {
  private readonly index = new Map<string, ArenaRef>();
  private readonly arena: ServiceArena;
  private readonly clients: ArenaClientTable;

  constructor(arena: ServiceArena, clients: ArenaClientTable) {
    this.arena = arena;
    this.clients = clients;
  }

  get size(): number {
    return this.index.size;
  }

  add(host: string, path: string): void {
    this.remove(host, path);
    const client = this.clients.ensure(host);
    if (client === undefined) return; // advisory: a full arena keeps no record
    const bytes = utf8.encode(path);
    let ref: ArenaRef;
    try {
      ref = this.arena.alloc(RecordKind.MOUNT, [client], bytes.length);
    } catch (error) {
      if (error instanceof ArenaFull) return;
      throw error;
    }
    this.arena.body(ref).set(bytes);
    this.index.set(`${host} ${path}`, ref);
    this.clients.pinned.add(host);
    while (this.index.size > MOUNT_RECORDS_MAX) {
      const oldest = this.index.keys().next().value;
      if (oldest === undefined) break;
      this.drop(oldest);
    }
  }

  remove(host: string, path: string): void {
    this.drop(`${host} ${path}`);
  }

  removeHost(host: string): void {
    for (const key of [...this.index.keys()]) if (key.startsWith(`${host} `)) this.drop(key);
  }

  list(): MountEntry[] {
    return [...this.index.values()].map((ref) => this.entryOf(ref));
  }

  rebuild(records: readonly ArenaRecord[]): void {
    this.index.clear();
    this.clients.pinned.clear();
    for (const r of records) {
      if (r.kind !== RecordKind.MOUNT) continue;
      const { host, path } = this.entryOf(r.ref);
      this.index.set(`${host} ${path}`, r.ref);
      this.clients.pinned.add(host);
    }
  }

  private entryOf(ref: ArenaRef): MountEntry {
    const [client] = this.arena.refsOf(ref);
    assert(client !== undefined, "a mount record refers to its client");
    return { host: this.clients.addressOf(client), path: fromUtf8.decode(this.arena.body(ref)) };
  }

  private drop(key: string): void {
    const ref = this.index.get(key);
    if (ref === undefined) return;
    const { host } = this.entryOf(ref);
    this.arena.free(ref);
    this.index.delete(key);
    if (![...this.index.keys()].some((k) => k.startsWith(`${host} `))) this.clients.pinned.delete(host);
  }
}

const OUTCOME_CODE = { success: 0, "garbage-args": 1, "system-error": 2, "auth-error": 3 } as const;

/**
 * The duplicate request cache's finished replies, one record each: outcome, key, reply bytes.
 * Oldest out first, by entries, bytes, and whenever the arena has no room for a new one.
 */
export class ArenaReplyStore implements ReplyStore<RpcOutcome> {
  private readonly index = new Map<string, ArenaRef>();
  private order: string[] = [];
  private orderHead = 0;
  private bytes = 0;
  private readonly arena: ServiceArena;
  private readonly entriesMax: number;
  private readonly bytesMax: number;

  constructor(arena: ServiceArena, entriesMax = DRC_ENTRIES_MAX_DEFAULT, bytesMax = DRC_BYTES_MAX_DEFAULT) {
    assert(entriesMax >= 1 && bytesMax >= 1, "reply cache bounds are positive");
    this.arena = arena;
    this.entriesMax = entriesMax;
    this.bytesMax = bytesMax;
  }

  get size(): number {
    return this.index.size;
  }

  get(key: string): RpcOutcome | undefined {
    const ref = this.index.get(key);
    if (ref === undefined) return undefined;
    const body = this.arena.body(ref);
    const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
    const code = view.getUint8(0);
    const payload = body.slice(4 + view.getUint16(2, true));
    switch (code) {
      case OUTCOME_CODE.success:
        return { kind: "success", body: [payload] };
      case OUTCOME_CODE["garbage-args"]:
        return { kind: "garbage-args" };
      case OUTCOME_CODE["auth-error"]:
        return { kind: "auth-error", stat: authStatOf(view.getUint8(1)) };
      default:
        return { kind: "system-error" };
    }
  }

  put(key: string, reply: RpcOutcome, _bytes: number): void {
    if (reply.kind === "drop") return;
    const keyBytes = utf8.encode(key);
    const parts = reply.kind === "success" ? reply.body : [];
    const payloadBytes = parts.reduce((n, p) => n + p.length, 0);
    const size = 4 + keyBytes.length + payloadBytes;
    // Not kept: the retransmission runs again (as with an uncacheable reply); none of NFS's
    // non-idempotent replies is anywhere near a page.
    if (keyBytes.length > KEY_BYTES_MAX || size > RECORD_PAYLOAD_BYTES_MAX) return;
    assert(!this.index.has(key), "a reply is stored once per key");
    let ref: ArenaRef | undefined;
    while (ref === undefined) {
      try {
        ref = this.arena.alloc(RecordKind.REPLY, [], size);
      } catch (error) {
        if (!(error instanceof ArenaFull) || !this.evictOldest()) return;
      }
    }
    const body = this.arena.body(ref);
    const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
    view.setUint8(0, OUTCOME_CODE[reply.kind]);
    view.setUint8(1, reply.kind === "auth-error" ? reply.stat : 0);
    view.setUint16(2, keyBytes.length, true);
    body.set(keyBytes, 4);
    let at = 4 + keyBytes.length;
    for (const part of parts) {
      body.set(part, at);
      at += part.length;
    }
    this.index.set(key, ref);
    this.order.push(key);
    this.bytes += size;
    while (this.index.size > this.entriesMax || this.bytes > this.bytesMax) if (!this.evictOldest()) break;
  }

  rebuild(records: readonly ArenaRecord[]): void {
    this.index.clear();
    this.order = [];
    this.orderHead = 0;
    this.bytes = 0;
    for (const r of records) {
      if (r.kind !== RecordKind.REPLY) continue;
      const keyBytes = new DataView(r.body.buffer, r.body.byteOffset, 4).getUint16(2, true);
      const key = fromUtf8.decode(r.body.subarray(4, 4 + keyBytes));
      this.index.set(key, r.ref);
      this.order.push(key);
      this.bytes += r.body.length;
    }
  }

  private evictOldest(): boolean {
    while (this.orderHead < this.order.length) {
      const key = this.order[this.orderHead++]!;
      const ref = this.index.get(key);
      if (ref === undefined) continue;
      this.bytes -= this.arena.body(ref).length;
      this.arena.free(ref);
      this.index.delete(key);
      if (this.orderHead > 1024 && this.orderHead * 2 > this.order.length) {
        this.order = this.order.slice(this.orderHead);
        this.orderHead = 0;
      }
      return true;
    }
    return false;
  }
}

function authStatOf(n: number): 0 | 1 | 2 | 3 | 4 | 5 {
  return n === 1 || n === 2 || n === 3 || n === 4 || n === 5 ? n : 0;
}

/** Everything above over one arena, with what a move needs: stats, compaction, restore. */
export class ServiceState {
  readonly arena: ServiceArena;
  readonly clients: ArenaClientTable;
  readonly mounts: ArenaMountList;
  readonly replies: ArenaReplyStore;
  private verifierRef: ArenaRef | undefined;

  private constructor(arena: ServiceArena) {
    this.arena = arena;
    this.clients = new ArenaClientTable(arena);
    this.mounts = new ArenaMountList(arena, this.clients);
    this.replies = new ArenaReplyStore(arena);
  }

  /** A new vserver's state, with its write verifier. */
  static create(
    pool: PagePool,
    tag: number,
    writeVerifier: Uint8Array,
    pagesMax = SERVICE_PAGES_MAX_DEFAULT,
  ): ServiceState {
    assert(writeVerifier.length === 8, "a write verifier is 8 bytes");
    const state = new ServiceState(new ServiceArena(pool, tag, pagesMax));
    state.verifierRef = state.arena.alloc(RecordKind.VERIFIER, [], 8);
    state.arena.body(state.verifierRef).set(writeVerifier);
    return state;
  }

  /** The state that arrived as pages from another node: re-based, checked, indexes rebuilt. */
  static restore(
    pool: PagePool,
    manifest: ArenaManifest,
    images: ReadonlyMap<number, Uint8Array>,
    pagesMax = SERVICE_PAGES_MAX_DEFAULT,
  ): ServiceState {
    const state = new ServiceState(ServiceArena.fromImages(pool, manifest, images, pagesMax));
    try {
      state.rebuild();
      if (state.verifierRef === undefined) throw new Error("the moved state has no write verifier");
    } catch (error) {
      state.dispose();
      throw error;
    }
    return state;
  }

  get writeVerifier(): Uint8Array {
    assert(this.verifierRef !== undefined, "a service state has its write verifier");
    return this.arena.body(this.verifierRef).slice();
  }

  /** Packs sparse pages (before the final copy of a move) and re-reads the indexes. */
  compact(): number {
    const moved = this.arena.compact().size;
    if (moved > 0) this.rebuild();
    return moved;
  }

  stats(): ServiceStateStats {
    return {
      ...this.arena.stats(),
      clients: this.clients.size,
      mounts: this.mounts.size,
      replies: this.replies.size,
    };
  }

  dispose(): void {
    this.arena.dispose();
  }

  private rebuild(): void {
    const records = this.arena.records();
    this.verifierRef = records.find((r) => r.kind === RecordKind.VERIFIER)?.ref;
    this.clients.rebuild(records);
    this.mounts.rebuild(records);
    this.replies.rebuild(records);
  }
}
