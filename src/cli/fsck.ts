import type { Command } from "commander";
import { FileBlockDevice } from "../block/index.ts";
import { type FsckProblem, type FsckReport, fsck, fsckExitCode, NotAVolumeError } from "../fs/index.ts";
import { type Output, processOutput } from "./output.ts";
import { CliFailure, runVerb } from "./run-verb.ts";

/** e2fsck's "operational error": the check itself could not run. */
export const FSCK_EXIT_OPERATIONAL = 8;

/** Checks the volume in `path` (repairing when asked) and returns fsck's exit status. */
export async function runFsck(path: string, repair: boolean, output: Output): Promise<number> {
  const device = await FileBlockDevice.open(path);
  let report: FsckReport;
  try {
    report = await fsck(device, { repair, onProgress: progressLine() });
  } catch (error) {
    if (error instanceof NotAVolumeError) {
      throw new CliFailure(`${path}: ${error.message === "" ? "not a Flotilla volume" : error.message}`);
    }
    throw error;
  } finally {
    if (process.stderr.isTTY) process.stderr.write("\r\x1b[K");
    await device.close().catch(() => {});
  }
  for (const line of describeFsckReport(path, report)) output.line(line);
  return fsckExitCode(report);
}

/** On a terminal, a progress line on stderr that the report then overwrites; elsewhere nothing. */
function progressLine(): ((p: { blocksChecked: number; blocksTotal: number }) => void) | undefined {
  if (!process.stderr.isTTY) return undefined;
  return ({ blocksChecked, blocksTotal }) => {
    const percent = blocksTotal === 0 ? 100 : Math.min(100, Math.floor((100 * blocksChecked) / blocksTotal));
    process.stderr.write(`\r\x1b[Kchecking: ${blocksChecked} of ${blocksTotal} blocks (${percent}%)`);
  };
}

/** The report as lines for an operator: what was checked, each problem, and the verdict. */
export function describeFsckReport(path: string, report: FsckReport): string[] {
  const lines = [
    `checked ${path} at txg ${report.txg}: ${report.treeBlocks} tree blocks, ${report.dataBlocks} data blocks, ` +
      `${report.inodes} inodes, ${report.dirEntries} directory entries`,
  ];
  for (const problem of report.problems) lines.push(`  ${describeProblem(problem)}`);
  const left = report.problems.filter((p) => !p.repaired).length;
  if (report.problems.length === 0) lines.push("clean: no problems found");
  else if (left === 0) lines.push(`${report.problems.length} problems found, all repaired`);
  else lines.push(`${report.problems.length} problems found, ${left} left unrepaired (try --repair)`);
  return lines;
}

function describeProblem(problem: FsckProblem): string {
  const where = [
    problem.blockIndex === undefined ? undefined : `block ${problem.blockIndex}`,
    problem.ino === undefined ? undefined : `inode ${problem.ino}`,
  ].filter((part) => part !== undefined);
  const place = where.length === 0 ? "" : ` [${where.join(", ")}]`;
  return `${problem.repaired ? "repaired" : "PROBLEM"} ${problem.kind}: ${problem.message}${place}`;
}

export function registerFsck(program: Command, output: Output = processOutput): void {
  program
    .command("fsck")
    .description("check a Flotilla volume: every checksum, link count, directory entry and the free map")
    .argument("<file>", "the volume file to check")
    .option("-r, --repair", "repair what can be repaired", false)
    .addHelpText(
      "after",
      [
        "",
        "Exit status (as e2fsck): 0 clean, 1 problems found and all repaired, 4 problems left,",
        "8 the check could not run (missing file, not a volume, I/O error).",
        "",
        "Examples:",
        "  flotilla fsck /srv/flotilla/vol1.img",
        "  flotilla fsck /srv/flotilla/vol1.img --repair",
      ].join("\n"),
    )
    .action((file: string, options: { repair: boolean }) =>
      runVerb("fsck", FSCK_EXIT_OPERATIONAL, output, () => runFsck(file, options.repair, output)),
    );
}
