import { type FileHandle, open, rename } from "node:fs/promises";
import { dirname } from "node:path";
import { assert } from "../util/assert.ts";

/** What a file being replaced is made of: bytes at positions (the gaps stay holes). */
export interface FilePart {
  readonly bytes: Uint8Array;
  readonly position: number;
}

/** A file being made beside its final name; a crash leaves it behind for the owner to remove. */
export const TEMP_SUFFIX = ".tmp";

/**
 * Makes `path` hold exactly `parts`, atomically and durably: written to `path.tmp`, fdatasynced,
 * renamed over `path`, and the directory synced. After a crash `path` holds the old content or the
 * new, never a mix.
 */
export async function replaceFile(path: string, parts: readonly FilePart[], mode = 0o644): Promise<void> {
  const temp = `${path}${TEMP_SUFFIX}`;
  const handle = await open(temp, "w", mode);
  try {
    for (const part of parts) await writeFully(handle, part.bytes, part.position);
    await handle.datasync();
  } finally {
    await handle.close();
  }
  await rename(temp, path);
  await syncDirectory(dirname(path));
}

/** fsync of a directory: makes the creation, rename or removal of its entries durable. */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Writes all of `bytes` at `position` (a positional write may write less than asked). */
export async function writeFully(handle: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  for (let done = 0; done < bytes.length; ) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, position + done);
    assert(bytesWritten > 0, "a positional write makes progress");
    done += bytesWritten;
  }
}
