import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { HANDLE_KEY_BYTES_MIN } from "./file-handle.ts";

/** What identifies a vserver across restarts: its handles stay valid because these stay the same. */
export interface VserverConfig {
  readonly vserverId: number;
  readonly volumeId: number;
  /** The secret that authenticates its file handles. */
  readonly handleKey: Uint8Array;
}

const CONFIG_FILE = "vserver.json";
const FORMAT = 1;

/** A config file that exists but cannot be used: the server must not start with new keys over it. */
export class VserverConfigError extends Error {
  override name = "VserverConfigError";
}

function parse(text: string, path: string): VserverConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new VserverConfigError(`${path} is not JSON`);
  }
  if (typeof raw !== "object" || raw === null) throw new VserverConfigError(`${path} is not an object`);
  const { format, vserverId, volumeId, handleKey } = raw as Record<string, unknown>;
  const isId = (v: unknown): v is number =>
    typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
  if (format !== FORMAT) throw new VserverConfigError(`${path}: unknown format ${String(format)}`);
  if (!isId(vserverId) || !isId(volumeId))
    throw new VserverConfigError(`${path}: vserverId and volumeId must be 32-bit ids`);
  if (typeof handleKey !== "string") throw new VserverConfigError(`${path}: handleKey is missing`);
  const key = Buffer.from(handleKey, "base64");
  if (key.length < HANDLE_KEY_BYTES_MIN)
    throw new VserverConfigError(`${path}: handleKey is shorter than ${HANDLE_KEY_BYTES_MIN} bytes`);
  return { vserverId, volumeId, handleKey: new Uint8Array(key) };
}

/** Reads the vserver's config from `dataDir`, making one (with a fresh key, mode 0600) on first start. */
export async function loadOrCreateVserverConfig(
  dataDir: string,
): Promise<{ config: VserverConfig; created: boolean }> {
  const path = join(dataDir, CONFIG_FILE);
  try {
    return { config: parse(await readFile(path, "utf8"), path), created: false };
  } catch (error) {
    if (!(error instanceof Error && "code" in error && error.code === "ENOENT")) throw error;
  }
  const config: VserverConfig = {
    vserverId: randomBytes(4).readUInt32BE(0),
    volumeId: randomBytes(4).readUInt32BE(0),
    handleKey: new Uint8Array(randomBytes(32)),
  };
  const body = {
    format: FORMAT,
    vserverId: config.vserverId,
    volumeId: config.volumeId,
    handleKey: Buffer.from(config.handleKey).toString("base64"),
  };
  await writeFile(path, `${JSON.stringify(body, null, 2)}\n`, { mode: 0o600, flag: "wx" });
  return { config, created: true };
}
