/**
 * The CPU profile bench/nfs.ts takes of `flotilla serve` (node --cpu-prof): self time per function
 * and per file, and per innermost Flotilla (src/) function, within the client's measured phases.
 */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { REPO } from "./nfs-processes.ts";

const PROFILE_FUNCTIONS_MAX = 18;
const PROFILE_FILES_MAX = 8;

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly startTime: number;
  readonly endTime: number;
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

function isCpuProfile(value: unknown): value is CpuProfile {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  const times = typeof v.startTime === "number" && typeof v.endTime === "number";
  return times && Array.isArray(v.nodes) && Array.isArray(v.samples) && Array.isArray(v.timeDeltas);
}

function location(frame: CallFrame): string {
  if (frame.url === "") return "";
  const path = frame.url.startsWith("file://") ? fileURLToPath(frame.url) : frame.url;
  const shown = path.startsWith(`${REPO}/`) ? path.slice(REPO.length + 1) : path;
  return `${shown}:${frame.lineNumber + 1}`;
}

function functionKey(frame: CallFrame): string {
  return `${frame.functionName || "(anonymous)"}  ${location(frame)}`;
}

/** For each profile node, the innermost frame at or above it that is the project's own code. */
function ownFrames(profile: CpuProfile): Map<number, CallFrame> {
  const SRC = `${REPO}/src/`;
  const isOwn = (frame: CallFrame) =>
    frame.url.startsWith("file://") && fileURLToPath(frame.url).startsWith(SRC);
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const own = new Map<number, CallFrame>();
  for (const node of profile.nodes) {
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const frame = byId.get(id)?.callFrame;
      if (frame !== undefined && isOwn(frame)) {
        own.set(node.id, frame);
        break;
      }
    }
  }
  return own;
}

export interface Window {
  /** What the client was doing then, e.g. "stat". */
  readonly label: string;
  readonly startUs: number;
  readonly endUs: number;
}

/**
 * Self time per function and per file within the window, from each sample and the time until the
 * next one. Sample times are the profile's startTime plus the running sum of timeDeltas.
 */
function summarize(profile: CpuProfile, window: Window): void {
  const frames = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
  const ownFrame = ownFrames(profile);
  const byFunction = new Map<string, number>();
  const byFile = new Map<string, number>();
  const byOwn = new Map<string, number>();
  let totalUs = 0;
  let idleUs = 0;
  let atUs = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    atUs += profile.timeDeltas[i] ?? 0;
    const frame = frames.get(profile.samples[i]!);
    const us = profile.timeDeltas[i + 1] ?? 0;
    if (frame === undefined || atUs < window.startUs || atUs > window.endUs) continue;
    totalUs += us;
    if (frame.functionName === "(idle)") {
      idleUs += us;
      continue;
    }
    const key = functionKey(frame);
    byFunction.set(key, (byFunction.get(key) ?? 0) + us);
    const file = frame.url === "" ? frame.functionName : location(frame).replace(/:\d+$/, "");
    byFile.set(file, (byFile.get(file) ?? 0) + us);
    const own = ownFrame.get(profile.samples[i]!);
    const ownKey = own === undefined ? "(no Flotilla frame on the stack)" : functionKey(own);
    byOwn.set(ownKey, (byOwn.get(ownKey) ?? 0) + us);
  }
  const busyUs = Math.max(totalUs - idleUs, 1);
  const ms = (us: number) => (us / 1000).toFixed(0).padStart(8);
  const pct = (us: number) => `${((100 * us) / busyUs).toFixed(1).padStart(5)}%`;
  process.stdout.write(
    `  sampled ${ms(totalUs).trim()} ms, idle ${ms(idleUs).trim()} ms, busy ${ms(busyUs).trim()} ms\n` +
      `  top functions by self time (% of busy):\n`,
  );
  const top = (map: Map<string, number>, count: number) =>
    [...map].sort((a, b) => b[1] - a[1]).slice(0, count);
  for (const [key, us] of top(byFunction, PROFILE_FUNCTIONS_MAX))
    process.stdout.write(`  ${ms(us)} ms ${pct(us)}  ${key}\n`);
  process.stdout.write("  by file:\n");
  for (const [key, us] of top(byFile, PROFILE_FILES_MAX))
    process.stdout.write(`  ${ms(us)} ms ${pct(us)}  ${key}\n`);
  process.stdout.write(
    "  by the innermost Flotilla (src/) function on the stack, Node's time under it included:\n",
  );
  for (const [key, us] of top(byOwn, PROFILE_FUNCTIONS_MAX))
    process.stdout.write(`  ${ms(us)} ms ${pct(us)}  ${key}\n`);
}

/**
 * Prints the summary of the one .cpuprofile in profileDir for each of the client's phases
 * (CLOCK_MONOTONIC µs), so that each figure's costs are seen apart from the others'.
 */
export async function printProfile(profileDir: string, phases: readonly Window[]): Promise<void> {
  const files = (await readdir(profileDir)).filter((f) => f.endsWith(".cpuprofile"));
  if (files.length !== 1) throw new Error(`expected one .cpuprofile in ${profileDir}, found ${files.length}`);
  const parsed: unknown = JSON.parse(await readFile(join(profileDir, files[0]!), "utf8"));
  if (!isCpuProfile(parsed)) throw new Error(`${files[0]} is not a V8 CPU profile`);
  const profile = parsed;
  // V8 and the client both read CLOCK_MONOTONIC; if that ever stops holding, show the whole run.
  const inside = phases.every((w) => w.startUs >= profile.startTime && w.endUs <= profile.endTime);
  if (!inside) {
    process.stdout.write("  the whole server run (the client's clock does not match the profile's)\n");
    summarize(profile, { label: "all", startUs: -Infinity, endUs: Infinity });
    return;
  }
  for (const phase of phases) {
    const ms = ((phase.endUs - phase.startUs) / 1000).toFixed(0);
    process.stdout.write(`  phase ${phase.label} (${ms} ms of the client's):\n`);
    summarize(profile, phase);
  }
}
