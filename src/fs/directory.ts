import { assertionFailed } from "../util/assert.ts";
import { FsError } from "./errors.ts";
import {
  type DirEntryRecord,
  decodeDirEntries,
  decodeDirIndex,
  dirEntryKey,
  dirIndexKey,
  encodeDirEntries,
  encodeDirIndex,
  type Inode,
  nameHash,
} from "./items.ts";
import { ITEM_VALUE_BYTES_MAX, KEY_OFFSET_MAX } from "./layout.ts";
import type { VolumeStore } from "./store.ts";
import type { FileType } from "./types.ts";

/** The entry `name` in directory `dir`, found through the name-hash item: logarithmic in the directory's size. */
export async function findEntry(
  store: VolumeStore,
  dir: number,
  nameBytes: Uint8Array,
  name: string,
): Promise<DirEntryRecord | null> {
  const bucket = await store.tree.get(dirEntryKey(dir, nameHash(nameBytes)));
  if (bucket === undefined) return null;
  return decodeDirEntries(bucket).find((e) => e.name === name) ?? null;
}

export async function addEntry(
  store: VolumeStore,
  dir: Inode,
  nameBytes: Uint8Array,
  name: string,
  child: { ino: number; gen: number; type: FileType },
): Promise<void> {
  const hashKey = dirEntryKey(dir.ino, nameHash(nameBytes));
  const bucket = await store.tree.get(hashKey);
  const entries = bucket === undefined ? [] : decodeDirEntries(bucket);
  if (entries.some((e) => e.name === name)) assertionFailed(`adding "${name}" twice to directory ${dir.ino}`);
  const record: DirEntryRecord = { name, ino: child.ino, gen: child.gen, type: child.type, seq: dir.nextSeq };
  const encoded = encodeDirEntries([...entries, record]);
  if (encoded.length > ITEM_VALUE_BYTES_MAX) {
    throw new FsError("NOSPC", `too many names in directory ${dir.ino} share the hash of "${name}"`);
  }
  dir.nextSeq++;
  dir.entryCount++;
  await store.tree.put(hashKey, encoded);
  await store.tree.put(dirIndexKey(dir.ino, record.seq), encodeDirIndex(record));
}

export async function removeEntry(
  store: VolumeStore,
  dir: Inode,
  entry: DirEntryRecord,
  nameBytes: Uint8Array,
): Promise<void> {
  const hashKey = dirEntryKey(dir.ino, nameHash(nameBytes));
  const bucket = await store.tree.get(hashKey);
  if (!(bucket !== undefined))
    assertionFailed(`removing "${entry.name}" that is not in directory ${dir.ino}`);
  const rest = decodeDirEntries(bucket).filter((e) => e.name !== entry.name);
  if (rest.length === 0) await store.tree.delete(hashKey);
  else await store.tree.put(hashKey, encodeDirEntries(rest));
  const removed = await store.tree.delete(dirIndexKey(dir.ino, entry.seq));
  if (!removed) assertionFailed(`directory ${dir.ino} has no index item for "${entry.name}"`);
  dir.entryCount--;
  if (!(dir.entryCount >= 0)) assertionFailed(`directory ${dir.ino} entry count went negative`);
}

/** Up to `max` entries with sequence numbers above `afterSeq`, in creation order; `more` if others follow. */
export async function listEntries(
  store: VolumeStore,
  dir: number,
  afterSeq: number,
  max: number,
): Promise<{ entries: DirEntryRecord[]; more: boolean }> {
  const entries: DirEntryRecord[] = [];
  let more = false;
  await store.tree.scan(dirIndexKey(dir, afterSeq + 1), dirIndexKey(dir, KEY_OFFSET_MAX), (k, value) => {
    if (entries.length === max) {
      more = true;
      return false;
    }
    entries.push(decodeDirIndex(value, k.offset));
    return true;
  });
  return { entries, more };
}
