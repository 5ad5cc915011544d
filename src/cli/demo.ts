import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Command, Option } from "commander";
import { FileBlockDevice } from "../block/index.ts";
import { type Credentials, mount, type NodeRef, type Volume } from "../fs/index.ts";
import { formatBytes } from "../util/size.ts";
import { runFsck } from "./fsck.ts";
import { parseVolumeSize, runMkfs } from "./mkfs.ts";
import { type Output, processOutput } from "./output.ts";
import { CliFailure, runVerb } from "./run-verb.ts";

const ROOT: Credentials = { uid: 0, gid: 0, gids: [] };
const GREETING = new TextEncoder().encode("Hello from a Flotilla volume!\n");
const DEMO_BYTES = 64 * 1024 * 1024;
const PATTERN_BYTES = 1024 * 1024;
/** The demo directory holds a handful of entries; more pages than this means readdir is looping. */
const READDIR_PAGES_MAX = 100;

export interface DemoOptions {
  /** Where to make the volume; a fresh temporary file when absent. */
  readonly file: string | undefined;
  readonly sizeBytes: number;
}

/** Walks through the file system end to end on a fresh volume, printing each step. */
export async function runDemo(options: DemoOptions, output: Output): Promise<number> {
  const path = options.file ?? join(await mkdtemp(join(tmpdir(), "flotilla-demo-")), "volume.img");
  output.line("== 1. make a volume");
  await runMkfs(path, { sizeBytes: options.sizeBytes, force: false }, output);

  output.line("\n== 2. mount it and use it");
  const device = await FileBlockDevice.open(path);
  try {
    const volume = await mount(device);
    await useVolume(volume, output);
    output.line("\n== 3. commit and unmount");
    await volume.commit();
    await volume.unmount();
    output.line("committed: everything above is durable; unmounted");
  } finally {
    await device.close();
  }

  output.line("\n== 4. check it");
  const fsckExit = await runFsck(path, false, output);

  output.line(`\nThe volume is still there: ${path}`);
  output.line("Try:");
  output.line(`  npm run flotilla -- fsck ${path}`);
  output.line("  npm run flotilla -- mkfs /tmp/vol --size 1G");
  output.line("  npm run flotilla -- --help");
  return fsckExit;
}

async function useVolume(volume: Volume, output: Output): Promise<void> {
  const dir = await volume.mkdir(ROOT, volume.rootRef, "projects", { mode: 0o755 });
  output.line("made directory /projects");

  const hello = await createFile(volume, dir.ref, "hello.txt");
  await volume.write(ROOT, hello, 0, GREETING, "file-sync");
  output.line(`wrote ${GREETING.length} bytes to /projects/hello.txt (file-sync: durable at once)`);

  const pattern = new Uint8Array(PATTERN_BYTES).map((_, i) => (i * 31) & 0xff);
  const big = await createFile(volume, dir.ref, "pattern.bin");
  await volume.write(ROOT, big, 0, pattern, "unstable");
  output.line(
    `wrote ${formatBytes(PATTERN_BYTES)} to /projects/pattern.bin (unstable: durable at the next commit)`,
  );

  await volume.symlink(ROOT, dir.ref, "latest", "hello.txt", {});
  output.line("made symlink /projects/latest -> hello.txt");

  await expectContent(volume, hello, GREETING, "/projects/hello.txt", output);
  await expectContent(volume, big, pattern, "/projects/pattern.bin", output);
  await listDirectory(volume, dir.ref, "/projects", output);

  const stat = await volume.fsstat();
  output.line(
    `fsstat: ${formatBytes(stat.totalBytes)} total, ${formatBytes(stat.freeBytes)} free, ` +
      `${stat.freeFiles} more files fit`,
  );
}

async function createFile(volume: Volume, dir: NodeRef, name: string): Promise<NodeRef> {
  const created = await volume.create(ROOT, dir, name, { kind: "guarded", attrs: { mode: 0o644 } });
  return created.ref;
}

async function expectContent(
  volume: Volume,
  ref: NodeRef,
  expected: Uint8Array,
  name: string,
  output: Output,
): Promise<void> {
  const { data } = await volume.read(ROOT, ref, 0, expected.length);
  if (!Buffer.from(data).equals(expected)) {
    throw new CliFailure(`read back ${data.length} bytes of ${name}, and they differ from what was written`);
  }
  output.line(`read back ${name}: ${formatBytes(data.length)}, same as written`);
}

async function listDirectory(volume: Volume, dir: NodeRef, name: string, output: Output): Promise<void> {
  output.line(`listing ${name}:`);
  let cookie = 0;
  let verifier = 0n;
  for (let page = 0; page < READDIR_PAGES_MAX; page++) {
    const result = await volume.readdir(ROOT, dir, cookie, verifier, 64);
    for (const entry of result.entries) {
      const attr = await volume.getattr(entry.ref);
      const mode = attr.mode.toString(8).padStart(4, "0");
      output.line(`  ${entry.type.padEnd(4)} ${mode} ${String(attr.size).padStart(9)}  ${entry.name}`);
      cookie = entry.cookie;
    }
    if (result.eof) return;
    verifier = result.verifier;
  }
  throw new CliFailure(`listing ${name} did not end after ${READDIR_PAGES_MAX} pages`);
}

export function registerDemo(program: Command, output: Output = processOutput): void {
  program
    .command("demo")
    .description("show the volume file system at work: make, mount, write, read, list, commit, check")
    .option("--file <file>", "make the volume here (must not exist) instead of in a temporary directory")
    .addOption(
      new Option("-s, --size <size>", "volume size").argParser(parseVolumeSize).default(DEMO_BYTES, "64M"),
    )
    .addHelpText("after", "\nExamples:\n  npm start\n  flotilla demo --file /tmp/demo.img --size 256M")
    .action((options: { file?: string; size: number }) =>
      runVerb("demo", 1, output, () => runDemo({ file: options.file, sizeBytes: options.size }, output)),
    );
}
