/**
 * The storage half of the dashboard: volumes (from GET /v1/status, with their vserver), storage
 * servers with their load, measure and hot flag, chunk moves and drains (GET /v1/storage), and live
 * moves of vservers (status). Pure.
 */
import type { DrainJob } from "../api/drain-jobs.ts";
import type { MigrationStatus, StatusDocument, VolumeStatus } from "../api/status.ts";
import type { MoveStatus, ServerStatus, TierStatus } from "../storage/tier-status.ts";
import { formatBytes, formatLoad, formatRate, percent } from "./format.ts";
import type { SafeHtml } from "./html.ts";
import { badge, progress, type Tone, table } from "./table.ts";

/** GET /v1/storage. */
export interface StorageDocument extends TierStatus {
  readonly drains: readonly DrainJob[];
}

const VOLUME_TONE: Readonly<Record<VolumeStatus["state"], Tone>> = {
  ok: "ok",
  degraded: "warn",
  unavailable: "bad",
};
const SERVER_TONE: Readonly<Record<ServerStatus["state"], Tone>> = {
  alive: "ok",
  draining: "warn",
  dead: "bad",
  missing: "bad",
};
const MIGRATION_TONE: Readonly<Record<MigrationStatus["state"], Tone>> = {
  requested: "idle",
  copying: "warn",
  suspended: "warn",
  done: "ok",
  failed: "bad",
};
const DRAIN_TONE: Readonly<Record<DrainJob["state"], Tone>> = { running: "warn", done: "ok", failed: "bad" };

export function volumesTable(status: StatusDocument): SafeHtml {
  return table(
    [
      { title: "volume", cell: (v) => v.id },
      { title: "state", cell: (v) => badge(v.state, VOLUME_TONE[v.state]) },
      { title: "size", cell: (v) => formatBytes(v.sizeBytes) },
      { title: "replicas", cell: (v) => v.replicationFactor },
      { title: "vserver", cell: (v) => v.vserver ?? "-" },
      { title: "chunks", cell: (v) => v.chunks },
      { title: "short of copies", cell: (v) => v.underReplicated },
      { title: "no copy", cell: (v) => v.unavailable },
      { title: "moving", cell: (v) => v.moving },
      { title: "owner epoch", cell: (v) => v.ownerEpoch },
    ],
    status.volumes,
    { empty: "no volumes", data: (v) => ({ volume: v.id, state: v.state }) },
  );
}

export function serversTable(storage: StorageDocument): SafeHtml {
  return table(
    [
      { title: "server", cell: (s) => s.serverId },
      { title: "state", cell: (s) => badge(s.state, SERVER_TONE[s.state]) },
      { title: "address", cell: (s) => s.address ?? "-" },
      {
        title: "used",
        cell: (s) =>
          s.capacityBytes === null
            ? formatBytes(s.allocatedBytes)
            : progress(
                s.allocatedBytes,
                s.capacityBytes,
                `${formatBytes(s.allocatedBytes)} of ${formatBytes(s.capacityBytes)}`,
              ),
      },
      { title: "chunks", cell: (s) => s.chunks },
      { title: "measure", cell: (s) => formatLoad(s.load?.measure ?? null) },
      { title: "flag", cell: (s) => (s.load === null ? "-" : s.load.hot ? badge("hot", "bad") : "-") },
      { title: "requests/s", cell: (s) => (s.load === null ? "-" : s.load.requestsPerSec.toFixed(0)) },
      { title: "throughput", cell: (s) => (s.load === null ? "-" : formatRate(s.load.bytesPerSec)) },
      { title: "p99", cell: (s) => (s.load === null ? "-" : `${s.load.latencyP99Ms.toFixed(1)} ms`) },
      { title: "cpu", cell: (s) => (s.load === null ? "-" : `${percent(s.load.cpuBusy, 1)}%`) },
    ],
    storage.servers,
    {
      empty: "no storage servers",
      data: (s) => ({ server: s.serverId, state: s.state, hot: s.load?.hot ?? false }),
    },
  );
}

export function movesTable(storage: StorageDocument): SafeHtml {
  return table<MoveStatus>(
    [
      { title: "chunk", cell: (m) => `${m.volumeId}#${m.chunkIndex}` },
      { title: "from", cell: (m) => m.from },
      { title: "to", cell: (m) => m.to },
      { title: "why", cell: (m) => m.reason },
      {
        title: "copied",
        cell: (m) =>
          progress(
            m.copiedBlocks,
            m.chunkBlocks,
            `${percent(m.copiedBlocks, m.chunkBlocks)}% of ${m.chunkBlocks} blocks`,
          ),
      },
    ],
    storage.moves,
    { empty: "no chunk moves under way", data: (m) => ({ chunk: `${m.volumeId}#${m.chunkIndex}` }) },
  );
}

export function drainsTable(storage: StorageDocument): SafeHtml {
  return table(
    [
      { title: "server", cell: (d) => d.serverId },
      { title: "state", cell: (d) => badge(d.state, DRAIN_TONE[d.state]) },
      {
        title: "progress",
        cell: (d) =>
          progress(
            d.progress.bytesDone,
            d.progress.bytesTotal,
            `${d.progress.chunksDone} of ${d.progress.chunksTotal} chunks, ${formatBytes(d.progress.bytesDone)} of ${formatBytes(d.progress.bytesTotal)}`,
          ),
      },
      { title: "error", cell: (d) => d.error ?? "-" },
    ],
    storage.drains,
    { empty: "no drains", data: (d) => ({ drain: d.serverId, state: d.state }) },
  );
}

export function migrationsTable(status: StatusDocument): SafeHtml {
  return table(
    [
      { title: "vserver", cell: (m) => m.vserver },
      { title: "from", cell: (m) => m.from },
      { title: "to", cell: (m) => m.to },
      { title: "state", cell: (m) => badge(m.state, MIGRATION_TONE[m.state]) },
      { title: "rounds", cell: (m) => m.rounds },
      { title: "sent", cell: (m) => `${m.pagesSent} pages, ${formatBytes(m.bytesSent)}` },
      { title: "suspended", cell: (m) => (m.suspendedMs === 0 ? "-" : `${m.suspendedMs} ms`) },
      { title: "why it failed", cell: (m) => m.reason ?? "-" },
    ],
    status.migrations,
    { empty: "no live moves", data: (m) => ({ migration: m.vserver, state: m.state }) },
  );
}
