/** Reaches into a storage server's chunk files, to damage them the way a failing disk would. */
import { open } from "node:fs/promises";
import { join } from "node:path";
import { BLOCK_BYTES } from "../../src/block/types.ts";
import { chunkPath, DATA_OFFSET } from "../../src/storage/chunk-format.ts";

/** Flips one byte inside block `blockInChunk` of a chunk file, behind the server's back. */
export async function flipByteInChunkFile(
  dataDir: string,
  volumeId: string,
  chunkIndex: number,
  blockInChunk: number,
): Promise<void> {
  const path = chunkPath(join(dataDir, "volumes"), { volumeId, chunkIndex });
  const handle = await open(path, "r+");
  try {
    const at = DATA_OFFSET + blockInChunk * BLOCK_BYTES + 123;
    const byte = new Uint8Array(1);
    await handle.read(byte, 0, 1, at);
    byte[0] = (byte[0] ?? 0) ^ 0x5a;
    await handle.write(byte, 0, 1, at);
  } finally {
    await handle.close();
  }
}
