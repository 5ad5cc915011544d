import { BLOCK_BYTES, type BlockDevice } from "../block/index.ts";
import { assert, assertionFailed } from "../util/assert.ts";
import { checksum, fromUtf8, readU64, utf8, viewOf, writeU64 } from "./bytes.ts";
import { decodeIntentOps, encodeIntentOp, type IntentOp } from "./intent-ops.ts";
import { INTENT_LOG_BLOCKS, INTENT_LOG_FIRST_BLOCK } from "./layout.ts";

const LOG_MAGIC = 0x4c544c46; // "FLTL"
const HEADER_BYTES = 48;
const CRC_OFFSET = BLOCK_BYTES - 4;
const PAYLOAD_BYTES_MAX = CRC_OFFSET - HEADER_BYTES;
/** Batches written at once (each waiting for its flush). */
const BATCHES_IN_FLIGHT_MAX = 4;
/** Event-loop turns a batch waits for more operations to join before it is written. */
const GATHER_TURNS_MAX = 2;
/** Blocks read at once when the log is replayed. */
const REPLAY_READ_BLOCKS = 64;

/** A batch that would not fit the log: the owner commits instead, which empties it. */
export class IntentLogFullError extends Error {
  override name = "IntentLogFullError";
}

/** Device block of absolute log position `position`: the log is a ring. */
function blockOf(position: number): number {
  return INTENT_LOG_FIRST_BLOCK + (position % INTENT_LOG_BLOCKS);
}

interface BlockHeader {
  readonly txg: number;
  readonly position: number;
  readonly volumeId: Uint8Array;
}

const OPEN_BRACKET = 0x5b;
const COMMA = 0x2c;
const CLOSE_BRACKET = 0x5d;

/** A log block holding `ops` (each an operation's JSON in UTF-8) as one JSON array. */
function encodeLogBlock(header: BlockHeader, ops: readonly Uint8Array[]): Uint8Array {
  const block = new Uint8Array(BLOCK_BYTES);
  let at = HEADER_BYTES;
  block[at++] = OPEN_BRACKET;
  ops.forEach((op, i) => {
    if (i > 0) block[at++] = COMMA;
    assert(at + op.length + 1 <= CRC_OFFSET, "log block payload fits");
    block.set(op, at);
    at += op.length;
  });
  block[at++] = CLOSE_BRACKET;
  const payload = { length: at - HEADER_BYTES };
  const view = viewOf(block);
  view.setUint32(0, LOG_MAGIC, true);
  view.setUint32(4, payload.length, true);
  writeU64(view, 8, header.txg);
  writeU64(view, 16, header.position);
  block.set(header.volumeId.subarray(0, 16), 24);
  view.setUint32(40, ops.length, true);
  view.setUint32(CRC_OFFSET, checksum(block.subarray(0, CRC_OFFSET)), true);
  return block;
}

/** The operations of a log block, or null when it is not the block expected at that position. */
function decodeLogBlock(block: Uint8Array, expected: BlockHeader): IntentOp[] | null {
  const view = viewOf(block);
  if (view.getUint32(0, true) !== LOG_MAGIC) return null;
  if (view.getUint32(CRC_OFFSET, true) !== checksum(block.subarray(0, CRC_OFFSET))) return null;
  if (readU64(view, 8) !== expected.txg || readU64(view, 16) !== expected.position) return null;
  const id = block.subarray(24, 40);
  if (!id.every((b, i) => b === expected.volumeId[i])) return null;
  const payloadBytes = view.getUint32(4, true);
  if (payloadBytes > PAYLOAD_BYTES_MAX) return null;
  const ops = decodeIntentOps(fromUtf8(block.subarray(HEADER_BYTES, HEADER_BYTES + payloadBytes)));
  // A block that passed its checksum but does not parse was written by a broken build: say so.
  if (typeof ops === "string") throw new Error(`intent log block at position ${expected.position}: ${ops}`);
  if (ops.length !== view.getUint32(40, true))
    throw new Error(`intent log block at position ${expected.position}: wrong count`);
  return ops;
}

/** Operations logged after transaction group `txg`, whose records begin at position `head`. */
export async function readIntentLog(
  device: BlockDevice,
  volumeId: Uint8Array,
  txg: number,
  head: number,
): Promise<IntentOp[]> {
  const ops: IntentOp[] = [];
  let position = head;
  while (position - head < INTENT_LOG_BLOCKS) {
    const ringLeft = INTENT_LOG_BLOCKS - (position % INTENT_LOG_BLOCKS);
    // The first read is one block: after a clean unmount the head holds nothing to replay.
    const want = position === head ? 1 : REPLAY_READ_BLOCKS;
    const count = Math.min(want, ringLeft, INTENT_LOG_BLOCKS - (position - head));
    const blocks = await device.read(blockOf(position), count);
    for (let i = 0; i < count; i++) {
      const found = decodeLogBlock(blocks.subarray(i * BLOCK_BYTES, (i + 1) * BLOCK_BYTES), {
        txg,
        position: position + i,
        volumeId,
      });
      if (found === null) return ops;
      ops.push(...found);
    }
    position += count;
  }
  return ops;
}

/**
 * The intent log of a volume: a ring of blocks in the reserved area where namespace changes are
 * written, a few together, between transaction groups. A change is durable once its log block is
 * flushed, long before the next commit rewrites the tree; mounting replays what the log holds
 * past the newest transaction group. Each block names the group it follows and its absolute
 * position, so blocks of an older group or an older lap of the ring are never replayed.
 *
 * One batch is written at a time. A commit takes the operations no batch has taken yet (the
 * commit covers them) and starts the next group's records at the head.
 */
export class IntentLog {
  private readonly device: BlockDevice;
  private readonly volumeId: Uint8Array;
  /** The transaction group records written now follow. */
  private txg: number;
  /** Position where the records following `txg` begin. */
  private regionStart: number;
  /** Next position to write. */
  private head: number;
  /** Operations appended and not yet taken by a batch or a commit, with their sequence numbers. */
  private pending: Array<{ seq: number; bytes: Uint8Array }> = [];
  private appended = 0;
  private durableSeq = 0;
  private waiters: Array<{ seq: number; resolve: () => void; reject: (error: unknown) => void }> = [];
  /** A batch is gathering operations. */
  private gathering = false;
  /** First positions of the batches written and not yet flushed, oldest first. */
  private readonly inFlight: number[] = [];
  /** Settles once every batch write begun so far has; rejects if one failed. */
  private written: Promise<void> = Promise.resolve();
  /** A commit was asked for (the ring is full, or a write failed); until it is done nothing is written. */
  private commitAsked = false;
  private failure: unknown = null;
  /** Asks the volume for a commit; called at most once until that commit is done. */
  private readonly onFull: () => void;

  constructor(device: BlockDevice, volumeId: Uint8Array, txg: number, head: number, onFull: () => void) {
    this.device = device;
    this.volumeId = volumeId;
    this.txg = txg;
    this.regionStart = head;
    this.head = head;
    this.onFull = onFull;
  }

  /** Records a change made under the volume's lock; the order of calls is the order of replay. */
  append(op: IntentOp): void {
    const bytes = utf8(encodeIntentOp(op));
    if (!(bytes.length + 2 <= PAYLOAD_BYTES_MAX))
      assertionFailed(`intent op of ${bytes.length} bytes fits a log block`);
    this.pending.push({ seq: ++this.appended, bytes });
  }

  /** Resolves once every operation appended before the call is durable, by the log or a commit. */
  durable(): Promise<void> {
    if (this.failure !== null) return Promise.reject(this.failure);
    const seq = this.appended;
    if (this.durableSeq >= seq) return Promise.resolve();
    const done = new Promise<void>((resolve, reject) => this.waiters.push({ seq, resolve, reject }));
    this.kick();
    return done;
  }

  private kick(): void {
    if (this.gathering || this.commitAsked || this.pending.length === 0) return;
    if (this.inFlight.length >= BATCHES_IN_FLIGHT_MAX) return;
    this.gathering = true;
    void this.gather().then(() => {
      this.gathering = false;
      this.startBatch();
    });
  }

  /**
   * Lets calls that have already arrived (on the sockets, in the lock's queue) join the batch: a
   * few event-loop turns while it keeps growing, no timer, so a lone caller waits microseconds.
   */
  private async gather(): Promise<void> {
    for (let turn = 0; turn < GATHER_TURNS_MAX; turn++) {
      const before = this.pending.length;
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (this.pending.length === before && turn > 0) return;
    }
  }

  /**
   * Writes the pending operations as one batch. Batches overlap (a later one is written while an
   * earlier one flushes), but each flush is called only once every earlier batch's write has
   * finished, so a flushed batch never follows a gap: replay stops at the first missing block.
   */
  private startBatch(): void {
    if (this.pending.length === 0 || this.commitAsked || this.failure !== null) return;
    const blocks = this.pack();
    const oldest = Math.min(this.regionStart, this.inFlight[0] ?? Number.POSITIVE_INFINITY);
    if (this.head + blocks.length - oldest > INTENT_LOG_BLOCKS) {
      // The commit this asks for takes the pending operations and resolves their waiters.
      this.askCommit();
      return;
    }
    const taken = this.pending;
    this.pending = [];
    const lastSeq = taken[taken.length - 1]!.seq;
    const start = this.head;
    const encoded = blocks.map((ops, i) =>
      encodeLogBlock({ txg: this.txg, position: start + i, volumeId: this.volumeId }, ops),
    );
    this.head += blocks.length;
    this.inFlight.push(start);
    // A batch that wraps around the ring is two writes.
    const firstPart = Math.min(encoded.length, INTENT_LOG_BLOCKS - (start % INTENT_LOG_BLOCKS));
    const mine = Promise.all([
      this.device.write(blockOf(start), joinBlocks(encoded.slice(0, firstPart))),
      firstPart < encoded.length
        ? this.device.write(blockOf(start + firstPart), joinBlocks(encoded.slice(firstPart)))
        : undefined,
    ]);
    const written = Promise.all([this.written, mine]).then(() => undefined);
    written.catch(() => undefined);
    this.written = written;
    written
      .then(() => this.device.flush())
      .then(
        () => {
          this.inFlight.splice(this.inFlight.indexOf(start), 1);
          this.markDurable(lastSeq);
          this.kick();
        },
        () => {
          // The operations are in memory still: a commit makes them durable, or fails the volume.
          this.inFlight.splice(this.inFlight.indexOf(start), 1);
          this.askCommit();
        },
      );
    this.kick();
  }

  private askCommit(): void {
    if (this.commitAsked) return;
    this.commitAsked = true;
    this.onFull();
  }

  /** The pending operations, cut into blocks. */
  private pack(): Uint8Array[][] {
    const blocks: Uint8Array[][] = [];
    let current: Uint8Array[] = [];
    let bytes = 2;
    for (const { bytes: json } of this.pending) {
      const size = json.length + 1;
      if (bytes + size > PAYLOAD_BYTES_MAX && current.length > 0) {
        blocks.push(current);
        current = [];
        bytes = 2;
      }
      current.push(json);
      bytes += size;
    }
    if (current.length > 0) blocks.push(current);
    return blocks;
  }

  private markDurable(seq: number): void {
    if (seq <= this.durableSeq) return;
    this.durableSeq = seq;
    const still: typeof this.waiters = [];
    for (const w of this.waiters) {
      if (w.seq <= seq) w.resolve();
      else still.push(w);
    }
    this.waiters = still;
  }

  /**
   * A commit is about to write its superblock, under the volume's lock: it covers every operation
   * appended so far. Returns the sequence it covers and where the next group's records begin.
   */
  beginCommit(): { covered: number; head: number } {
    this.pending = [];
    return { covered: this.appended, head: this.head };
  }

  /** The commit of `txg` is durable: what it covered is, and new records follow it. */
  commitDone(txg: number, begun: { covered: number; head: number }): void {
    assert(txg > this.txg, "the intent log's transaction group went backwards");
    this.txg = txg;
    this.regionStart = begun.head;
    this.commitAsked = false;
    // Records after the commit do not depend on older batches: a failed one stops nothing now.
    this.written = Promise.resolve();
    this.markDurable(begun.covered);
    if (this.waiters.length > 0) this.kick();
  }

  /** The volume failed: nobody waiting will see their change made durable. */
  fail(error: unknown): void {
    this.failure ??= error;
    for (const w of this.waiters) w.reject(this.failure);
    this.waiters = [];
  }
}

function joinBlocks(blocks: Uint8Array[]): Uint8Array {
  if (blocks.length === 1) return blocks[0]!;
  const out = new Uint8Array(blocks.length * BLOCK_BYTES);
  blocks.forEach((b, i) => {
    out.set(b, i * BLOCK_BYTES);
  });
  return out;
}
