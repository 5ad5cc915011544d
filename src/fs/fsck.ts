import type { BlockDevice } from "../block/index.ts";
import { BLOCK_BYTES } from "../block/index.ts";
import type { FsckOptions, FsckProblem, FsckReport } from "./api.ts";
import { utf8 } from "./bytes.ts";
import { FsError, isFsError } from "./errors.ts";
import { repairVolume } from "./fsck-repair.ts";
import {
  type DirEntryRecord,
  decodeDirEntries,
  decodeDirIndex,
  decodeInode,
  type Inode,
  nameHash,
} from "./items.ts";
import {
  GROUP_BITMAP_BYTES,
  GROUP_BLOCKS,
  ItemType,
  type Key,
  RESERVED_BLOCK_COUNT,
  ROOT_INO,
  SPACE_OID,
} from "./layout.ts";
import { VolumeStore } from "./store.ts";
import { walkVolume } from "./volume-walk.ts";

/** What a check learned about the volume: the repair works from it. */
export interface CheckState {
  readonly problems: FsckProblem[];
  readonly inodes: Map<number, Inode>;
  /** Every directory entry, from the by-sequence items. */
  readonly entries: Array<DirEntryRecord & { dir: number }>;
  readonly used: Uint8Array;
  usedCount: number;
  treeBlocks: number;
  dataBlocks: number;
  /** False when damaged tree blocks kept part of the volume from being read. */
  complete: boolean;
}

const PROBLEMS_OF_A_KIND_MAX = 20;

function isMarked(bits: Uint8Array, i: number): boolean {
  return (bits[i >> 3]! & (1 << (i & 7))) !== 0;
}

/** Walks the whole committed volume and checks every checksum and invariant. */
export async function checkStore(
  store: VolumeStore,
  onProgress?: FsckOptions["onProgress"],
): Promise<CheckState> {
  const state: CheckState = {
    problems: [],
    inodes: new Map(),
    entries: [],
    used: new Uint8Array(Math.ceil(store.blockCount / 8)),
    usedCount: 0,
    treeBlocks: 0,
    dataBlocks: 0,
    complete: true,
  };
  const kindCounts = new Map<string, number>();
  const problem = (
    kind: string,
    message: string,
    where: { blockIndex?: number; ino?: number } = {},
  ): void => {
    const seen = (kindCounts.get(kind) ?? 0) + 1;
    kindCounts.set(kind, seen);
    if (kind === "checksum" || kind === "tree") state.complete = false;
    if (seen <= PROBLEMS_OF_A_KIND_MAX) state.problems.push({ kind, message, ...where, repaired: false });
    else if (seen === PROBLEMS_OF_A_KIND_MAX + 1)
      state.problems.push({ kind, message: `more "${kind}" problems not listed`, repaired: false });
  };
  const markUsed = (block: number, what: string): void => {
    if (block < 0 || block >= store.blockCount) {
      problem("range", `${what} uses block ${block} outside the device`, { blockIndex: block });
    } else if (block < RESERVED_BLOCK_COUNT) {
      problem("range", `${what} uses reserved block ${block}`, { blockIndex: block });
    } else if (isMarked(state.used, block)) {
      problem("double-use", `block ${block} is used twice (again by ${what})`, { blockIndex: block });
    } else {
      state.used[block >> 3]! |= 1 << (block & 7);
      state.usedCount++;
    }
  };
  for (let b = 0; b < RESERVED_BLOCK_COUNT; b++) {
    state.used[b >> 3]! |= 1 << (b & 7);
    state.usedCount++;
  }
  const bitmaps = new Map<number, Uint8Array>();
  const hashed = new Map<number, DirEntryRecord>();
  const indexedPerDir = new Map<number, number>();
  let currentOid = -1;
  const flushUnindexed = (): void => {
    for (const orphan of hashed.values()) {
      problem("dir-entry", `"${orphan.name}" in directory ${currentOid} has no index item`, {
        ino: currentOid,
      });
    }
    hashed.clear();
  };
  const item = (k: Key, value: Uint8Array): void => {
    if (k.oid !== currentOid) {
      flushUnindexed();
      currentOid = k.oid;
    }
    try {
      if (k.oid === SPACE_OID && k.type === ItemType.BITMAP) bitmaps.set(k.offset, value);
      else if (k.type === ItemType.INODE) state.inodes.set(k.oid, decodeInode(value));
      else if (k.type === ItemType.DIR_ENTRY) {
        for (const entry of decodeDirEntries(value)) {
          if (nameHash(utf8(entry.name)) !== k.offset) {
            problem("dir-entry", `"${entry.name}" in directory ${k.oid} is filed under the wrong hash`, {
              ino: k.oid,
            });
          }
          hashed.set(entry.seq, entry);
        }
      } else if (k.type === ItemType.DIR_INDEX) {
        const entry = decodeDirIndex(value, k.offset);
        const twin = hashed.get(entry.seq);
        if (twin === undefined || twin.name !== entry.name || twin.ino !== entry.ino) {
          problem("dir-entry", `"${entry.name}" in directory ${k.oid} has no matching name item`, {
            ino: k.oid,
          });
        }
        hashed.delete(entry.seq);
        indexedPerDir.set(k.oid, (indexedPerDir.get(k.oid) ?? 0) + 1);
        state.entries.push({ ...entry, dir: k.oid });
      }
    } catch (error) {
      problem("item", `item (${k.oid}, ${k.type}, ${k.offset}): ${String(error)}`, { ino: k.oid });
    }
  };
  const dataPerIno = new Map<number, number>();
  await walkVolume(
    store,
    {
      node: (block) => {
        markUsed(block, "a tree node");
        state.treeBlocks++;
      },
      item,
      dataBlock: (block, ino, fileBlock, crcOk) => {
        markUsed(block, `inode ${ino}`);
        state.dataBlocks++;
        if (onProgress !== undefined && state.dataBlocks % 4096 === 0) {
          onProgress({
            blocksChecked: state.treeBlocks + state.dataBlocks,
            blocksTotal: store.allocator.usedBlocks,
          });
        }
        dataPerIno.set(ino, (dataPerIno.get(ino) ?? 0) + 1);
        if (!crcOk)
          problem(
            "checksum",
            `data block ${block} (inode ${ino}, file block ${fileBlock}) fails its checksum`,
            { blockIndex: block, ino },
          );
        const inode = state.inodes.get(ino);
        if (inode !== undefined && fileBlock * BLOCK_BYTES >= inode.size)
          problem("extent", `inode ${ino} maps file block ${fileBlock} past its size`, { ino });
      },
      problem,
    },
    true,
  );
  flushUnindexed();
  checkInodes(store, state, indexedPerDir, dataPerIno, problem);
  checkFreeMap(store, state, bitmaps, problem);
  return state;
}

function checkInodes(
  store: VolumeStore,
  state: CheckState,
  indexedPerDir: Map<number, number>,
  dataPerIno: Map<number, number>,
  problem: (kind: string, message: string, where?: { blockIndex?: number; ino?: number }) => void,
): void {
  const links = new Map<number, number>();
  const subdirs = new Map<number, number>();
  const parentOf = new Map<number, number>();
  for (const entry of state.entries) {
    const target = state.inodes.get(entry.ino);
    if (target === undefined) {
      problem("dangling", `"${entry.name}" in directory ${entry.dir} points to missing inode ${entry.ino}`, {
        ino: entry.dir,
      });
      continue;
    }
    if (target.gen !== entry.gen || target.type !== entry.type) {
      problem("dir-entry", `"${entry.name}" in directory ${entry.dir} disagrees with inode ${entry.ino}`, {
        ino: entry.dir,
      });
    }
    links.set(entry.ino, (links.get(entry.ino) ?? 0) + 1);
    if (target.type === "dir") {
      subdirs.set(entry.dir, (subdirs.get(entry.dir) ?? 0) + 1);
      parentOf.set(entry.ino, entry.dir);
    }
  }
  if (!state.inodes.has(ROOT_INO)) problem("root", "the root directory is missing", { ino: ROOT_INO });
  if (state.inodes.size !== store.inodeCount)
    problem(
      "inode-count",
      `superblock counts ${store.inodeCount} inodes, the tree holds ${state.inodes.size}`,
    );
  for (const [ino, inode] of state.inodes) {
    const refs = links.get(ino) ?? 0;
    if (ino >= store.nextIno)
      problem("next-ino", `inode ${ino} is not below the next inode number ${store.nextIno}`, { ino });
    if (ino !== ROOT_INO && refs === 0 && state.complete)
      problem("orphan", `inode ${ino} is in no directory`, { ino });
    const expected = inode.type === "dir" ? 2 + (subdirs.get(ino) ?? 0) : refs;
    if (inode.nlink !== expected && (refs > 0 || ino === ROOT_INO) && state.complete) {
      problem("nlink", `inode ${ino} has link count ${inode.nlink}, expected ${expected}`, { ino });
    }
    if (inode.type === "dir") {
      if ((indexedPerDir.get(ino) ?? 0) !== inode.entryCount) {
        problem(
          "entry-count",
          `directory ${ino} counts ${inode.entryCount} entries, holds ${indexedPerDir.get(ino) ?? 0}`,
          { ino },
        );
      }
      const parent = ino === ROOT_INO ? ROOT_INO : parentOf.get(ino);
      if (parent !== undefined && inode.parent !== parent)
        problem("parent", `directory ${ino} names parent ${inode.parent}, is in ${parent}`, { ino });
    }
    if ((dataPerIno.get(ino) ?? 0) !== inode.dataBlocks && state.complete) {
      problem(
        "used-blocks",
        `inode ${ino} counts ${inode.dataBlocks} data blocks, maps ${dataPerIno.get(ino) ?? 0}`,
        { ino },
      );
    }
  }
}

function checkFreeMap(
  store: VolumeStore,
  state: CheckState,
  bitmaps: Map<number, Uint8Array>,
  problem: (kind: string, message: string, where?: { blockIndex?: number; ino?: number }) => void,
): void {
  if (!state.complete) return;
  const groupCount = Math.ceil(store.blockCount / GROUP_BLOCKS);
  for (let g = 0; g < groupCount; g++) {
    const stored = bitmaps.get(g);
    if (stored !== undefined && stored.length !== GROUP_BITMAP_BYTES) {
      problem("free-map", `allocation bitmap of group ${g} is malformed`);
      continue;
    }
    const end = Math.min(store.blockCount, (g + 1) * GROUP_BLOCKS);
    for (let block = Math.max(g * GROUP_BLOCKS, RESERVED_BLOCK_COUNT); block < end; block++) {
      const marked = stored !== undefined && isMarked(stored, block - g * GROUP_BLOCKS);
      const used = isMarked(state.used, block);
      if (used && !marked)
        problem("free-map", `block ${block} is in use but marked free`, { blockIndex: block });
      else if (!used && marked)
        problem("leak", `block ${block} is marked in use but nothing uses it`, { blockIndex: block });
    }
  }
  if (store.allocator.usedBlocks !== state.usedCount) {
    problem(
      "used-count",
      `superblock counts ${store.allocator.usedBlocks} used blocks, the volume uses ${state.usedCount}`,
    );
  }
}

/** Walks the whole volume, checking every checksum and invariant; repairs what it can when asked. */
export async function fsck(device: BlockDevice, options: FsckOptions): Promise<FsckReport> {
  const first = await checkDevice(device, options);
  if (!options.repair || first.report.problems.length === 0 || first.store === null) return first.report;
  // A repair commits, which would leave the intent log's changes behind: they must be replayed first.
  const logged = first.store.logged.length;
  if (logged > 0) {
    throw new FsError(
      "IO",
      `the intent log holds ${logged} change(s) made after transaction group ${first.store.txg}; mount the volume once (for example with flotilla serve) so they are replayed, then repair`,
    );
  }
  await repairVolume(first.store, first.state!, checkStore);
  const second = await checkDevice(device, { repair: false });
  const remaining = new Set(second.report.problems.map((p) => `${p.kind}|${p.message}`));
  const problems = first.report.problems.map((p) => ({
    ...p,
    repaired: !remaining.has(`${p.kind}|${p.message}`),
  }));
  const fresh = second.report.problems.filter(
    (p) => !first.report.problems.some((q) => q.kind === p.kind && q.message === p.message),
  );
  return { ...second.report, problems: [...problems, ...fresh] };
}

async function checkDevice(
  device: BlockDevice,
  options: FsckOptions,
): Promise<{ report: FsckReport; store: VolumeStore | null; state: CheckState | null }> {
  let store: VolumeStore;
  try {
    store = await VolumeStore.open(device);
  } catch (error) {
    if (!isFsError(error, "IO")) throw error;
    const problem: FsckProblem = {
      kind: "checksum",
      message: error.message,
      ...(error.blockIndex === undefined ? {} : { blockIndex: error.blockIndex }),
      repaired: false,
    };
    return {
      report: { problems: [problem], treeBlocks: 0, dataBlocks: 0, inodes: 0, dirEntries: 0, txg: 0 },
      store: null,
      state: null,
    };
  }
  const state = await checkStore(store, options.onProgress);
  const report: FsckReport = {
    problems: state.problems,
    treeBlocks: state.treeBlocks,
    dataBlocks: state.dataBlocks,
    inodes: state.inodes.size,
    dirEntries: state.entries.length,
    txg: store.txg,
  };
  return { report, store: state.complete ? store : null, state };
}

/** Every block the committed volume uses: tree nodes, and data blocks with their owner. For tools and tests. */
export async function listUsedBlocks(
  device: BlockDevice,
): Promise<{ metadata: number[]; data: Array<{ blockIndex: number; ino: number }> }> {
  const store = await VolumeStore.open(device);
  const metadata: number[] = [];
  const data: Array<{ blockIndex: number; ino: number }> = [];
  await walkVolume(
    store,
    {
      node: (block) => metadata.push(block),
      item: () => undefined,
      dataBlock: (blockIndex, ino) => data.push({ blockIndex, ino }),
      problem: () => undefined,
    },
    true,
  );
  return { metadata, data };
}
