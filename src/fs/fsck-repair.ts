import { assert } from "../util/assert.ts";
import { utf8 } from "./bytes.ts";
import { addEntry, findEntry, removeEntry } from "./directory.ts";
import type { CheckState } from "./fsck.ts";
import { emptyDirectory, type Inode } from "./items.ts";
import { ROOT_INO } from "./layout.ts";
import type { VolumeStore } from "./store.ts";

const LOST_AND_FOUND = "lost+found";

/**
 * Repairs what a complete check found, in one transaction group: drops entries that point nowhere,
 * reattaches orphans under /lost+found, recounts links, entries and blocks; then rebuilds the free
 * map from a fresh walk in a second transaction group.
 */
export async function repairVolume(
  store: VolumeStore,
  state: CheckState,
  checkStore: (store: VolumeStore) => Promise<CheckState>,
): Promise<void> {
  assert(state.complete, "repairing a volume that could not be read completely");
  const inodes = state.inodes;
  const dirty = new Set<Inode>();
  const valid = state.entries.filter((e) => inodes.has(e.ino));
  for (const entry of state.entries) {
    if (inodes.has(entry.ino)) continue;
    const dir = inodes.get(entry.dir);
    if (dir === undefined) continue;
    await removeEntry(store, dir, entry, utf8(entry.name));
    dirty.add(dir);
  }
  const referenced = new Set(valid.map((e) => e.ino));
  const orphans = [...inodes.values()].filter((i) => i.ino !== ROOT_INO && !referenced.has(i.ino));
  if (orphans.length > 0) {
    const lostFound = await lostAndFound(store, inodes);
    for (const orphan of orphans) {
      const name = `#${orphan.ino}`;
      await addEntry(store, lostFound, utf8(name), name, orphan);
      valid.push({
        name,
        ino: orphan.ino,
        gen: orphan.gen,
        type: orphan.type,
        seq: lostFound.nextSeq - 1,
        dir: lostFound.ino,
      });
      dirty.add(lostFound);
    }
  }
  recount(inodes, valid, dirty);
  for (const inode of dirty) await store.putInode(inode);
  store.inodeCount = inodes.size;
  const highest = Math.max(...inodes.keys());
  if (store.nextIno <= highest) store.nextIno = highest + 1;
  await store.commit();
  const walked = await checkStore(store);
  store.allocator.resetFromUsed(walked.used);
  // Touch the tree so that the commit runs and rewrites every bitmap item.
  await store.putInode(inodes.get(ROOT_INO) ?? (await store.getInode(ROOT_INO))!);
  await store.commit();
}

async function lostAndFound(store: VolumeStore, inodes: Map<number, Inode>): Promise<Inode> {
  const root = inodes.get(ROOT_INO);
  assert(root !== undefined, "no root directory to hang lost+found from");
  const existing = await findEntry(store, ROOT_INO, utf8(LOST_AND_FOUND), LOST_AND_FOUND);
  if (existing !== null && existing.type === "dir") {
    const dir = inodes.get(existing.ino);
    if (dir !== undefined) return dir;
  }
  const ino = store.allocateIno();
  const dir = emptyDirectory(
    ino,
    store.generationFor(ino),
    ROOT_INO,
    { mode: 0o700, uid: 0, gid: 0 },
    root.mtime,
  );

  const name = existing === null ? LOST_AND_FOUND : `${LOST_AND_FOUND}.${ino}`;
  await addEntry(store, root, utf8(name), name, dir);
  inodes.set(ino, dir);
  return dir;
}

/** Sets link counts, entry counts and parents from the entries that remain. */
function recount(inodes: Map<number, Inode>, entries: CheckState["entries"], dirty: Set<Inode>): void {
  const links = new Map<number, number>();
  const subdirs = new Map<number, number>();
  const counts = new Map<number, number>();
  const parents = new Map<number, number>();
  for (const e of entries) {
    links.set(e.ino, (links.get(e.ino) ?? 0) + 1);
    counts.set(e.dir, (counts.get(e.dir) ?? 0) + 1);
    if (e.type === "dir") {
      subdirs.set(e.dir, (subdirs.get(e.dir) ?? 0) + 1);
      parents.set(e.ino, e.dir);
    }
  }
  for (const inode of inodes.values()) {
    const before = JSON.stringify([inode.nlink, inode.entryCount, inode.parent]);
    if (inode.type === "dir") {
      inode.nlink = 2 + (subdirs.get(inode.ino) ?? 0);
      inode.entryCount = counts.get(inode.ino) ?? 0;
      inode.parent = inode.ino === ROOT_INO ? ROOT_INO : (parents.get(inode.ino) ?? ROOT_INO);
    } else {
      inode.nlink = links.get(inode.ino) ?? 1;
    }
    if (JSON.stringify([inode.nlink, inode.entryCount, inode.parent]) !== before) dirty.add(inode);
  }
}
