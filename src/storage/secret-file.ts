/**
 * The cluster secret on disk: hexadecimal text (one line), readable by its owner only. Every storage
 * server and every client of the cluster holds the same file.
 */
import { randomBytes } from "node:crypto";
import { open, readFile, stat } from "node:fs/promises";
import { SECRET_BYTES_MAX, SECRET_BYTES_MIN } from "./auth.ts";

export const SECRET_BYTES_NEW = 32;

/** Reads and checks a secret file; every failure says what is wrong in words an operator can act on. */
export async function readSecretFile(path: string): Promise<Uint8Array> {
  const info = await stat(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== "ENOENT") throw error;
    throw new Error(
      `secret file ${path} does not exist (make one with: flotilla storage secret --out ${path})`,
    );
  });
  if (!info.isFile()) throw new Error(`secret file ${path} is not a regular file`);
  if ((info.mode & 0o077) !== 0) {
    throw new Error(
      `secret file ${path} is readable by others (mode ${(info.mode & 0o777).toString(8)}); chmod 600 it`,
    );
  }
  if (info.size > 4 * SECRET_BYTES_MAX)
    throw new Error(`secret file ${path} is ${info.size} bytes: not a secret`);
  const text = (await readFile(path, "utf8")).trim();
  if (!/^(?:[0-9a-f]{2})+$/i.test(text)) {
    throw new Error(
      `secret file ${path} does not hold hexadecimal digits (make one with: flotilla storage secret)`,
    );
  }
  const secret = new Uint8Array(Buffer.from(text, "hex"));
  if (secret.length < SECRET_BYTES_MIN || secret.length > SECRET_BYTES_MAX) {
    throw new Error(
      `secret file ${path} holds ${secret.length} bytes; a secret is ${SECRET_BYTES_MIN} to ${SECRET_BYTES_MAX}`,
    );
  }
  return secret;
}

/** Writes a new random secret to `path` with mode 0600; refuses to replace a file unless `force`. */
export async function writeSecretFile(path: string, force: boolean): Promise<void> {
  const text = `${randomBytes(SECRET_BYTES_NEW).toString("hex")}\n`;
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, force ? "w" : "wx", 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") {
      throw new Error(`${path} exists; pass --force to replace it (every server must then get the new one)`);
    }
    throw error;
  }
  try {
    // A replaced file keeps its old mode unless told.
    await handle.chmod(0o600);
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
}
