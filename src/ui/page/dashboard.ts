/**
 * The dashboard in the browser: the edge where the pure views meet fetch, EventSource, timers and
 * the DOM. It reads the status (GET /v1/status, /v1/storage) every REFRESH_MS and on each event of
 * the live stream (GET /v1/events/stream), keeps a few minutes of node loads for the chart, and
 * sends the operator back to the log-in page when the API no longer takes the cookie.
 */
import type { StatusDocument } from "../../api/status.ts";
import type { EventRecord } from "../../cluster/event-record.ts";
import { nodesTable, portsTable, routesTable, vipsTable, vserversTable } from "../cluster-tables.ts";
import { coalesce } from "../coalesce.ts";
import { eventsTable, mergeEvents } from "../event-list.ts";
import { formatClock } from "../format.ts";
import type { SafeHtml } from "../html.ts";
import { loadChart } from "../load-chart.ts";
import { addLoadSample, type LoadHistory } from "../load-history.ts";
import {
  drainsTable,
  migrationsTable,
  movesTable,
  type StorageDocument,
  serversTable,
  volumesTable,
} from "../storage-tables.ts";

const REFRESH_MS = 2_000;
/** A read that takes longer is given up (and the next poll tries again): the page must not hang. */
const FETCH_TIMEOUT_MS = 5_000;
const EVENTS_FIRST_PAGE = 100;

let history: LoadHistory = [];
let events: EventRecord[] = [];

function element(id: string): HTMLElement {
  const found = document.getElementById(id);
  if (found === null) throw new Error(`the dashboard page has no #${id}`);
  return found;
}

function show(id: string, view: SafeHtml): void {
  element(id).innerHTML = view.text;
}

class LoggedOut extends Error {
  override readonly name = "LoggedOut";
}

async function getJson<T>(path: string): Promise<T> {
  const response = await fetch(path, {
    headers: { accept: "application/json" },
    signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
  });
  if (response.status === 401) throw new LoggedOut("the admin API no longer takes this log-in");
  if (!response.ok) {
    const body = (await response.json().catch(() => null)) as { error?: { message?: string } } | null;
    throw new Error(`${path}: ${response.status} ${body?.error?.message ?? response.statusText}`);
  }
  return (await response.json()) as T;
}

function problem(text: string | undefined): void {
  const p = element("problem");
  p.hidden = text === undefined;
  p.textContent = text ?? "";
}

function renderStatus(status: StatusDocument, storage: StorageDocument, nowMs: number): void {
  element("master").textContent =
    status.master === null ? "no master" : `master ${status.master.nodeId} (term ${status.master.term})`;
  element("updated").textContent = `updated ${formatClock(nowMs)}`;
  show("nodes", nodesTable(status));
  show("load-chart", loadChart(history, nowMs));
  show("vservers", vserversTable(status));
  show("vips", vipsTable(status));
  show("ports", portsTable(status));
  show("routes", routesTable(status, nowMs));
  show("volumes", volumesTable(status));
  show("servers", serversTable(storage));
  show("moves", movesTable(storage));
  show("drains", drainsTable(storage));
  show("migrations", migrationsTable(status));
}

function failed(error: unknown): void {
  if (error instanceof LoggedOut) {
    location.assign("/ui");
    return;
  }
  problem(`cannot read the cluster's status: ${error instanceof Error ? error.message : String(error)}`);
}

const refresh = coalesce(async () => {
  try {
    const [status, storage] = await Promise.all([
      getJson<StatusDocument>("/v1/status"),
      getJson<StorageDocument>("/v1/storage"),
    ]);
    const nowMs = Date.now();
    history = addLoadSample(history, {
      atMs: nowMs,
      loads: new Map(status.nodes.map((n) => [n.id, n.alive ? n.loadPerCore : null])),
    });
    renderStatus(status, storage, nowMs);
    problem(undefined);
  } catch (error) {
    failed(error);
  }
});

function connection(text: string, tone: "ok" | "warn" | "bad"): void {
  const badge = element("connection");
  badge.textContent = text;
  badge.className = `badge ${tone}`;
}

function addEvents(incoming: readonly EventRecord[]): void {
  events = mergeEvents(events, incoming);
  show("events", eventsTable(events));
}

/** The newest page of events, then the stream from the newest on: none missed in between. */
async function follow(): Promise<void> {
  const page = await getJson<{ events: EventRecord[]; lastSeq: number }>(
    `/v1/events?limit=${EVENTS_FIRST_PAGE}`,
  );
  addEvents(page.events);
  const source = new EventSource(`/v1/events/stream?since=${page.lastSeq}`);
  source.addEventListener("open", () => connection("live", "ok"));
  source.addEventListener("message", (message: MessageEvent<string>) => {
    addEvents([JSON.parse(message.data) as EventRecord]);
    void refresh();
  });
  // The ring dropped events this page never saw: read the newest page again.
  source.addEventListener("missed", () => {
    void getJson<{ events: EventRecord[] }>(`/v1/events?limit=${EVENTS_FIRST_PAGE}`)
      .then((p) => addEvents(p.events))
      .catch(failed);
  });
  // EventSource reconnects by itself (with Last-Event-ID) unless the server refused it outright.
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) {
      connection("stream closed; polling", "bad");
      void refresh();
    } else connection("reconnecting", "warn");
  });
}

void refresh();
setInterval(() => void refresh(), REFRESH_MS);
follow().catch((error: unknown) => {
  connection("no event stream; polling", "bad");
  failed(error);
});
