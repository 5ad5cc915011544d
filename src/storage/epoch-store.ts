/**
 * Fencing: per volume, the highest owner epoch this server has seen, in DIR/<volumeId>.epoch. A
 * request carrying a higher epoch raises it, persisted before the request is applied; a request
 * carrying a lower one is FENCED and has no effect. Epoch 0 means "no owner" and raises nothing.
 *
 * Requests of a volume run under its epoch lock, shared; raising the epoch takes it alone. So once
 * a raise to E has resolved, every request below E either completed before it or is refused: a
 * fenced owner's write cannot be in flight behind the fence.
 */
import { mkdir, readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { type Logger, pino } from "pino";
import { assert } from "../util/assert.ts";
import { crc32 } from "../util/crc32.ts";
import { replaceFile, TEMP_SUFFIX } from "./durable-file.ts";
import { KeyedRwLock } from "./keyed-lock.ts";
import { StorageError, VOLUME_ID_PATTERN } from "./types.ts";

const EPOCH_SUFFIX = ".epoch";
const MAGIC = 0x464c4550; // "FLEP"
const FORMAT_VERSION = 1;
/** magic, version, epoch (u64), CRC-32 of the 16 bytes before it. */
const EPOCH_FILE_BYTES = 20;

export class EpochStore {
  private readonly dir: string;
  private readonly epochs = new Map<string, number>();
  private readonly locks = new KeyedRwLock();
  private readonly log: Logger;

  private constructor(dir: string, log: Logger) {
    this.dir = dir;
    this.log = log;
  }

  /** Loads every persisted epoch. A damaged epoch file stops the start: guessing could unfence an owner. */
  static async open(dir: string, logger?: Logger): Promise<EpochStore> {
    const log = (logger ?? pino({ level: "silent" })).child({ component: "epoch-store" });
    const store = new EpochStore(dir, log);
    await mkdir(dir, { recursive: true });
    for (const name of await readdir(dir)) {
      if (name.endsWith(TEMP_SUFFIX)) {
        await rm(join(dir, name), { force: true });
        continue;
      }
      const volumeId = name.endsWith(EPOCH_SUFFIX) ? name.slice(0, -EPOCH_SUFFIX.length) : "";
      if (!VOLUME_ID_PATTERN.test(volumeId)) {
        log.warn({ file: join(dir, name) }, "not an epoch file; ignored");
        continue;
      }
      store.epochs.set(volumeId, decodeEpochFile(await readFile(join(dir, name)), join(dir, name)));
    }
    log.info({ volumeCount: store.epochs.size }, "owner epochs loaded");
    return store;
  }

  /** The highest epoch persisted for the volume; 0 if none. */
  current(volumeId: string): number {
    return this.epochs.get(volumeId) ?? 0;
  }

  /**
   * Runs `work` as a request of owner `epoch` (>= 1): raises the volume's epoch first if `epoch` is
   * higher, refuses with FENCED if it is lower, and holds the epoch where it is while `work` runs.
   */
  async guard<T>(volumeId: string, epoch: number, work: () => Promise<T>): Promise<T> {
    assert(Number.isSafeInteger(epoch) && epoch >= 1, "an owner's epoch is at least 1");
    if (epoch > this.current(volumeId)) {
      await this.locks.exclusive(volumeId, () => this.persistIfHigher(volumeId, epoch));
    }
    return this.locks.shared(volumeId, () => {
      this.refuseIfLower(volumeId, epoch);
      return work();
    });
  }

  /** FENCE: raises the volume's epoch to `epoch`; FENCED if a higher one was seen. */
  fence(volumeId: string, epoch: number): Promise<void> {
    assert(Number.isSafeInteger(epoch) && epoch >= 1, "a fence's epoch is at least 1");
    return this.locks.exclusive(volumeId, async () => {
      this.refuseIfLower(volumeId, epoch);
      await this.persistIfHigher(volumeId, epoch);
    });
  }

  /** Raises the volume's epoch to at least `epoch` (what the coordination store says); never lowers it. */
  raise(volumeId: string, epoch: number): Promise<void> {
    assert(VOLUME_ID_PATTERN.test(volumeId), "a volume id");
    assert(Number.isSafeInteger(epoch) && epoch >= 0, "an epoch is a non-negative integer");
    if (epoch <= this.current(volumeId)) return Promise.resolve();
    return this.locks.exclusive(volumeId, () => this.persistIfHigher(volumeId, epoch));
  }

  private refuseIfLower(volumeId: string, epoch: number): void {
    const current = this.current(volumeId);
    if (epoch < current) {
      throw new StorageError(
        "FENCED",
        `volume ${volumeId}: owner epoch ${epoch} is fenced by epoch ${current}`,
      );
    }
  }

  /** Holding the volume's lock alone: persists `epoch` if it is higher than the current one. */
  private async persistIfHigher(volumeId: string, epoch: number): Promise<void> {
    const before = this.current(volumeId);
    if (epoch <= before) return;
    await replaceFile(join(this.dir, `${volumeId}${EPOCH_SUFFIX}`), [
      { bytes: encodeEpochFile(epoch), position: 0 },
    ]);
    assert(this.current(volumeId) === before, "epochs of one volume are raised one at a time");
    assert(epoch > before, "an owner epoch never goes back");
    this.epochs.set(volumeId, epoch);
    if (this.log.isLevelEnabled("debug"))
      this.log.debug({ volumeId, from: before, to: epoch }, "owner epoch raised");
  }
}

export function encodeEpochFile(epoch: number): Uint8Array {
  const bytes = new Uint8Array(EPOCH_FILE_BYTES);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, FORMAT_VERSION, true);
  view.setBigUint64(8, BigInt(epoch), true);
  view.setUint32(16, crc32(bytes.subarray(0, 16)), true);
  return bytes;
}

export function decodeEpochFile(bytes: Uint8Array, path: string): number {
  const fail = (what: string) =>
    new Error(
      `epoch file ${path} is damaged (${what}); restore it, or remove it and have the server learn the epoch from the cluster before it serves`,
    );
  if (bytes.length !== EPOCH_FILE_BYTES) throw fail(`${bytes.length} bytes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== MAGIC) throw fail("bad magic");
  if (view.getUint32(16, true) !== crc32(bytes.subarray(0, 16))) throw fail("bad checksum");
  if (view.getUint32(4, true) !== FORMAT_VERSION) throw fail(`format version ${view.getUint32(4, true)}`);
  const epoch = view.getBigUint64(8, true);
  if (epoch > BigInt(Number.MAX_SAFE_INTEGER)) throw fail(`epoch ${epoch} beyond 2^53`);
  return Number(epoch);
}
