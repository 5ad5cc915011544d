import { lstat, rm } from "node:fs/promises";
import { type Command, InvalidArgumentError } from "commander";
import { BLOCK_BYTES, FileBlockDevice } from "../block/index.ts";
import { mkfs } from "../fs/index.ts";
import { formatBytes, parseSize } from "../util/size.ts";
import { type Output, processOutput } from "./output.ts";
import { CliFailure, runVerb } from "./run-verb.ts";

/** Below this a volume has too little room for its own metadata to be worth making. */
export const VOLUME_BYTES_MIN = 1024 * 1024;

export interface MkfsCliOptions {
  readonly sizeBytes: number;
  readonly force: boolean;
}

/** Parses `--size`: binary units, rounded down to whole blocks, at least VOLUME_BYTES_MIN. */
export function parseVolumeSize(text: string): number {
  let bytes: number;
  try {
    bytes = parseSize(text);
  } catch (error) {
    throw new InvalidArgumentError(error instanceof Error ? error.message : String(error));
  }
  const sizeBytes = bytes - (bytes % BLOCK_BYTES);
  if (sizeBytes < VOLUME_BYTES_MIN) {
    throw new InvalidArgumentError(
      `"${text}" is below the minimum volume size of ${formatBytes(VOLUME_BYTES_MIN)}`,
    );
  }
  return sizeBytes;
}

/** Makes a sparse device file at `path` and an empty file system on it. */
export async function runMkfs(path: string, options: MkfsCliOptions, output: Output): Promise<number> {
  await makeRoomFor(path, options.force);
  const device = await FileBlockDevice.create(path, options.sizeBytes);
  try {
    await mkfs(device);
    await device.flush();
  } catch (error) {
    // A half-made volume would only confuse a later mount or fsck.
    await device.close().catch(() => {});
    await rm(path, { force: true });
    throw error;
  }
  await device.close();
  output.line(
    `made a Flotilla volume in ${path}: ${formatBytes(options.sizeBytes)}, ` +
      `${device.blockCount} blocks of ${formatBytes(BLOCK_BYTES)}`,
  );
  return 0;
}

/** Refuses to replace an existing file unless forced, and never replaces anything but a regular file. */
async function makeRoomFor(path: string, force: boolean): Promise<void> {
  const existing = await lstat(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return undefined;
    throw error;
  });
  if (existing === undefined) return;
  if (!existing.isFile()) throw new CliFailure(`${path} exists and is not a regular file; not touching it`);
  if (!force) throw new CliFailure(`${path} already exists; pass --force to overwrite it`);
  await rm(path);
}

export function registerMkfs(program: Command, output: Output = processOutput): void {
  program
    .command("mkfs")
    .description("make a new, empty Flotilla volume in a sparse file")
    .argument("<file>", "the volume file to create")
    .requiredOption(
      "-s, --size <size>",
      "volume size, e.g. 512M, 10G, 1T (rounded down to 4 KiB blocks)",
      parseVolumeSize,
    )
    .option("-f, --force", "overwrite FILE if it already exists", false)
    .addHelpText("after", "\nExample:\n  flotilla mkfs /srv/flotilla/vol1.img --size 10G")
    .action((file: string, options: { size: number; force: boolean }) =>
      runVerb("mkfs", 1, output, () =>
        runMkfs(file, { sizeBytes: options.size, force: options.force }, output),
      ),
    );
}
