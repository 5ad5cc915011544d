/**
 * `storage status` for people: servers with their load (the measure, the hot flag, what it is made
 * of), volumes with their health, and chunk moves and drains in progress, each with a progress bar.
 */
import type { DrainJob } from "../api/drain-jobs.ts";
import type { MoveStatus, TierStatus } from "../storage/tier-status.ts";
import { formatBytes } from "../util/size.ts";
import { table } from "./output.ts";

const BAR_WIDTH = 20;

/** `[#########-----------]  45%` */
export function progressBar(done: number, total: number): string {
  const fraction = total > 0 ? Math.min(1, Math.max(0, done / total)) : 1;
  const filled = Math.round(fraction * BAR_WIDTH);
  return `[${"#".repeat(filled)}${"-".repeat(BAR_WIDTH - filled)}] ${String(Math.floor(fraction * 100)).padStart(3)}%`;
}

function moveLine(m: MoveStatus): string {
  return `  ${m.volumeId} chunk ${m.chunkIndex}: ${m.from} -> ${m.to} (${m.reason}) ${progressBar(m.copiedBlocks, m.chunkBlocks)} ${m.copiedBlocks}/${m.chunkBlocks} blocks checkpointed`;
}

function drainLine(d: DrainJob): string {
  const p = d.progress;
  const what = `${p.chunksDone}/${p.chunksTotal} chunks, ${formatBytes(p.bytesDone)} of ${formatBytes(p.bytesTotal)}`;
  if (d.state === "failed") return `  ${d.serverId}: FAILED after ${what}: ${d.error ?? "?"}`;
  if (d.state === "done") return `  ${d.serverId}: drained, ${what}`;
  return `  ${d.serverId}: draining ${progressBar(p.bytesDone, p.bytesTotal)} ${what}`;
}

export function formatTierStatus(report: TierStatus & { readonly drains?: readonly DrainJob[] }): string {
  const lines: string[] = ["storage servers:"];
  if (report.servers.length === 0) lines.push("  (none registered)");
  else {
    const header = [
      "SERVER",
      "STATE",
      "ADDRESS",
      "PLACED",
      "CHUNKS",
      "LOAD",
      "REQ/S",
      "BYTES/S",
      "P99",
      "CPU",
      "NET IN/OUT",
    ];
    const rows: string[][] = [];
    for (const s of report.servers) {
      const l = s.load;
      const capacity = s.capacityBytes === null ? "?" : formatBytes(s.capacityBytes);
      rows.push([
        s.serverId,
        s.state,
        s.address ?? "-",
        `${formatBytes(s.allocatedBytes)} of ${capacity}`,
        String(s.chunks),
        l === null ? "-" : `${l.measure.toFixed(2)}${l.hot ? " HOT" : ""}`,
        l === null ? "-" : l.requestsPerSec.toFixed(0),
        l === null ? "-" : formatBytes(l.bytesPerSec),
        l === null ? "-" : `${l.latencyP99Ms.toFixed(1)} ms`,
        l === null ? "-" : `${Math.round(l.cpuBusy * 100)}%`,
        l === null ? "-" : `${formatBytes(l.networkInBytesPerSec)}/${formatBytes(l.networkOutBytesPerSec)}`,
      ]);
    }
    lines.push(...table(header, rows).map((line) => `  ${line}`));
    if (report.servers.some((s) => s.load?.hot === true))
      lines.push(
        "  HOT: serving more than 1.5x the group's mean request rate; the balancer moves chunks off it",
      );
  }
  lines.push("volumes:");
  if (report.volumes.length === 0) lines.push("  (none)");
  for (const v of report.volumes) {
    const health =
      v.unavailable > 0
        ? `${v.unavailable} chunks UNAVAILABLE (no live copy)`
        : v.underReplicated > 0
          ? `${v.underReplicated} chunks under-replicated (re-replicating)`
          : "healthy";
    const moving = v.moving > 0 ? `, ${v.moving} moving` : "";
    lines.push(
      `  ${v.volumeId.padEnd(12)} ${formatBytes(v.sizeBytes).padEnd(10)} RF=${v.replicationFactor} ${v.chunks} chunks: ${health}${moving}`,
    );
  }
  if (report.moves.length > 0) {
    lines.push(`chunk moves in progress (${report.moves.length}):`);
    lines.push(...report.moves.map(moveLine));
  }
  if (report.drains !== undefined && report.drains.length > 0) {
    lines.push("drains:");
    lines.push(...report.drains.map(drainLine));
  }
  return lines.join("\n");
}
