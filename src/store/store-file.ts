/**
 * The embedded store's file: every key not bound to a lease, with its revisions, and the store's
 * revision. Written whole, to a temporary file that is synced and renamed over the old one (then the
 * directory synced), so a crash leaves either the old file or the new one, never a torn one.
 * Lease-bound keys are left out: after a restart their leases are gone, as they would be in etcd.
 */
import { open, readFile, rename } from "node:fs/promises";
import { dirname } from "node:path";
import { z } from "zod";
import type { KeyValue } from "./types.ts";

const FORMAT = "flotilla-embedded-store";
const VERSION = 1;
/** A store file larger than this is refused rather than read into memory. */
export const STORE_FILE_BYTES_MAX = 256 * 1024 * 1024;

const revision = z.number().int().nonnegative();
const fileSchema = z
  .object({
    format: z.literal(FORMAT),
    version: z.literal(VERSION),
    revision,
    kvs: z.array(
      z
        .object({
          key: z.string().min(1),
          valueBase64: z.string(),
          createRevision: revision.min(1),
          modRevision: revision.min(1),
          version: revision.min(1),
        })
        .strict(),
    ),
  })
  .strict();

export interface StoreFileContents {
  readonly revision: number;
  readonly kvs: readonly KeyValue[];
}

export class StoreFileError extends Error {
  override name = "StoreFileError";
}

/** Reads a store file; undefined if there is none. A damaged file is an error, never an empty store. */
export async function readStoreFile(path: string): Promise<StoreFileContents | undefined> {
  let text: string;
  try {
    const handle = await open(path, "r");
    try {
      const { size } = await handle.stat();
      if (size > STORE_FILE_BYTES_MAX)
        throw new StoreFileError(`${path}: ${size} bytes, more than a store file may hold`);
      text = await readFile(handle, "utf8");
    } finally {
      await handle.close();
    }
  } catch (error) {
    if (error instanceof Error && "code" in error && error.code === "ENOENT") return undefined;
    throw error;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new StoreFileError(
      `${path}: not JSON (damaged store file; restore it or move it away to start empty)`,
      {
        cause: error,
      },
    );
  }
  const parsed = fileSchema.safeParse(raw);
  if (!parsed.success) throw new StoreFileError(`${path}: not a store file: ${parsed.error.message}`);
  const kvs = parsed.data.kvs.map(
    (kv): KeyValue => ({
      key: kv.key,
      value: new Uint8Array(Buffer.from(kv.valueBase64, "base64")),
      createRevision: kv.createRevision,
      modRevision: kv.modRevision,
      version: kv.version,
      lease: undefined,
    }),
  );
  for (const kv of kvs) {
    if (kv.modRevision > parsed.data.revision || kv.createRevision > kv.modRevision)
      throw new StoreFileError(`${path}: key ${kv.key} has revisions beyond the store's`);
  }
  return { revision: parsed.data.revision, kvs };
}

/** Replaces the store file with `contents`, durably. */
export async function writeStoreFile(path: string, contents: StoreFileContents): Promise<void> {
  const body = JSON.stringify({
    format: FORMAT,
    version: VERSION,
    revision: contents.revision,
    kvs: contents.kvs.map((kv) => ({
      key: kv.key,
      valueBase64: Buffer.from(kv.value).toString("base64"),
      createRevision: kv.createRevision,
      modRevision: kv.modRevision,
      version: kv.version,
    })),
  });
  const temporary = `${path}.tmp`;
  const file = await open(temporary, "w", 0o600);
  try {
    await file.writeFile(body);
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(temporary, path);
  const directory = await open(dirname(path), "r");
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
}
