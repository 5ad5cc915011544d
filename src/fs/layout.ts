import { BLOCK_BYTES } from "../block/index.ts";

/** Blocks 0 and 1 hold the two superblock slots; the rest of the first 16 blocks stay reserved. */
export const SUPERBLOCK_SLOT_BLOCKS = [0, 1] as const;
/** The intent log's ring (2 MiB less the superblock area): namespace changes between commits. */
export const INTENT_LOG_FIRST_BLOCK = 16;
export const INTENT_LOG_BLOCKS = 496;
/** Blocks before the first the allocator hands out: superblocks and the intent log. */
export const RESERVED_BLOCK_COUNT = INTENT_LOG_FIRST_BLOCK + INTENT_LOG_BLOCKS;

export const NODE_MAGIC = 0x4e544c46; // "FLTN"
export const NODE_HEADER_BYTES = 32;
export const NODE_PAYLOAD_BYTES = BLOCK_BYTES - NODE_HEADER_BYTES;
export const KEY_BYTES = 17;
/** Leaf item: key, u16 value length, value. */
export const LEAF_ITEM_OVERHEAD_BYTES = KEY_BYTES + 2;
/** Internal entry: key, u48 child block, u32 child checksum. */
export const INTERNAL_ENTRY_BYTES = KEY_BYTES + 6 + 4;
export const INTERNAL_FANOUT_MAX = Math.floor(NODE_PAYLOAD_BYTES / INTERNAL_ENTRY_BYTES);
/** Any value fits in half a leaf, so a split always leaves both halves within bounds. */
export const ITEM_VALUE_BYTES_MAX = Math.floor(NODE_PAYLOAD_BYTES / 2) - LEAF_ITEM_OVERHEAD_BYTES;
export const TREE_HEIGHT_MAX = 12;

/** Item types: one B+tree keyed by (object id, type, offset) holds all metadata. */
export const ItemType = {
  INODE: 1,
  /** offset = hash of the name; value = the entries whose names share that hash. */
  DIR_ENTRY: 2,
  /** offset = the entry's sequence number: the stable READDIR cookie. */
  DIR_INDEX: 3,
  /** offset = first file block; value = a run of device blocks with one checksum each. */
  EXTENT: 4,
  SYMLINK: 5,
  /** Under SPACE_OID: offset = group index; value = the group's allocation bitmap. */
  BITMAP: 6,
} as const;
export type ItemTypeCode = (typeof ItemType)[keyof typeof ItemType];

export const SPACE_OID = 0;
export const ROOT_INO = 1;
export const FIRST_USER_INO = 2;

/** Blocks described by one bitmap item (1,920 bytes of bits, so two items fit a leaf). */
export const GROUP_BITMAP_BYTES = 1920;
export const GROUP_BLOCKS = GROUP_BITMAP_BYTES * 8;

export const EXTENT_BLOCKS_MAX = 64;
export const NAME_BYTES_MAX = 255;
export const SYMLINK_TARGET_BYTES_MAX = 1024;
export const FILE_BYTES_MAX = 2 ** 43;
export const NLINK_MAX = 65_000;
export const READ_BYTES_MAX = 4 * 1024 * 1024;
/** First READDIR sequence number: 1 and 2 stay free for "." and ".." in NFS. */
export const DIR_FIRST_SEQ = 3;
/** Keys use JavaScript numbers: every field is a safe integer. */
export const KEY_OFFSET_MAX = Number.MAX_SAFE_INTEGER;

export interface Key {
  readonly oid: number;
  readonly type: number;
  readonly offset: number;
}

export function compareKeys(a: Key, b: Key): number {
  if (a.oid !== b.oid) return a.oid < b.oid ? -1 : 1;
  if (a.type !== b.type) return a.type < b.type ? -1 : 1;
  if (a.offset !== b.offset) return a.offset < b.offset ? -1 : 1;
  return 0;
}

export function key(oid: number, type: number, offset: number): Key {
  return { oid, type, offset };
}

export const KEY_MIN: Key = { oid: 0, type: 0, offset: 0 };
