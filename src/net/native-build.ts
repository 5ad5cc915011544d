/**
 * Builds the network layer's small C helpers (src/net/native/*.c) with gcc on first use, into a
 * cache directory, under a name that carries the source's hash: a changed source is built again, an
 * unchanged one never. Built on the machine that runs it rather than shipped, as the helpers are a
 * hundred lines and gcc is one package, where a binary would need one build per architecture.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { access, constants, lstat, mkdir, readFile, rename, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const NATIVE_SOURCES = fileURLToPath(new URL("./native/", import.meta.url));
/** gcc takes a fraction of a second for one of these; this bounds a hang. */
const BUILD_MS_MAX = 60_000;
const GCC_OUTPUT_BYTES_MAX = 256 * 1024;
/** Hex digits of the source's sha256 in the program's name: plenty to tell versions apart. */
const HASH_CHARS = 16;

export function nativeCacheDirDefault(): string {
  return join(tmpdir(), "flotilla-native");
}

/** A helper that could not be built: gcc missing, or the compile failed (its output in the message). */
export class NativeBuildError extends Error {
  override name = "NativeBuildError";
}

/** One build per program and cache directory at a time in this process, however many callers ask. */
const builds = new Map<string, Promise<string>>();

/**
 * The path of `native/<name>.c` built, building it if the cache has no build of this source.
 * `purpose` says who needs it, for the error when gcc is missing.
 */
export function nativeProgram(
  name: string,
  purpose: string,
  cacheDir = nativeCacheDirDefault(),
): Promise<string> {
  const key = `${cacheDir}\0${name}`;
  let build = builds.get(key);
  if (build === undefined) {
    build = buildIfMissing(name, purpose, cacheDir);
    // A failed build is not remembered: installing gcc and trying again must work without a restart.
    build.catch(() => builds.delete(key));
    builds.set(key, build);
  }
  return build;
}

async function buildIfMissing(name: string, purpose: string, cacheDir: string): Promise<string> {
  const source = join(NATIVE_SOURCES, `${name}.c`);
  const hash = createHash("sha256")
    .update(await readFile(source))
    .digest("hex")
    .slice(0, HASH_CHARS);
  const program = join(cacheDir, `${name}-${hash}`);
  await mkdir(cacheDir, { recursive: true, mode: 0o700 });
  await assertPrivate(cacheDir);
  try {
    await access(program, constants.X_OK);
    return program;
  } catch {
    // not built yet
  }
  // Built under a name of its own and renamed into place, so another process building the same
  // source at once, or a build cut short, never leaves a half-written program under the final name.
  const partial = `${program}.${process.pid}.partial`;
  try {
    await gcc(["-O2", "-Wall", "-Wextra", "-Werror", "-o", partial, source], purpose);
    await rename(partial, program);
  } finally {
    await rm(partial, { force: true });
  }
  return program;
}

/**
 * The helpers run as root with raw sockets: a cache directory (by default under the shared /tmp)
 * that someone else owns or may write to could hold their program under our name.
 */
async function assertPrivate(dir: string): Promise<void> {
  const stat = await lstat(dir);
  const uid = process.getuid?.();
  if (!stat.isDirectory() || (uid !== undefined && stat.uid !== uid) || (stat.mode & 0o022) !== 0) {
    throw new NativeBuildError(
      `${dir} is not a private directory of this user (a directory, ours, not group- or world-writable); not running programs from it`,
    );
  }
}

function gcc(args: readonly string[], purpose: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(
      "gcc",
      args,
      { timeout: BUILD_MS_MAX, killSignal: "SIGKILL", maxBuffer: GCC_OUTPUT_BYTES_MAX },
      (error, _stdout, stderr) => {
        if (error === null) return resolve();
        const code = (error as NodeJS.ErrnoException).code;
        const why =
          code === "ENOENT"
            ? `gcc is not installed (${purpose} need gcc and libc6-dev)`
            : /fatal error: [\w/.-]+\.h: No such file/.test(stderr)
              ? `gcc found no C library headers (${purpose} need gcc and libc6-dev): ${stderr.trim()}`
              : `gcc ${args.join(" ")} failed: ${stderr.trim() || error.message}`;
        reject(new NativeBuildError(why, { cause: error }));
      },
    );
  });
}
