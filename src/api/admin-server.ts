/**
 * The admin API: JSON over HTTP, bound to loopback by default, every request carrying the bearer
 * token kept in the data directory (made at first start, mode 0600). It turns requests into the
 * desired-state changes of `src/cluster/desired-state.ts` and volume operations of the storage tier,
 * and errors into statuses an operator's script can rely on:
 *   400 INVALID, 401 no or wrong token, 404 NOT_FOUND, 409 CONFLICT, 413 body too large,
 *   503 UNAVAILABLE (the store or the storage tier cannot be reached; retry), 500 a bug (logged).
 * Besides JSON: GET /metrics (Prometheus text, metrics.ts) and GET /v1/events/stream (Server-Sent
 * Events, event-stream.ts), behind the same token: they name tenants' vservers and their load; and
 * the web dashboard at /ui (dashboard-routes.ts), whose log-in sets a cookie that reads take in
 * place of the bearer header (request-token.ts).
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname } from "node:path";
import type { Logger } from "pino";
import { z } from "zod";
import { clusterKeys } from "../cluster/catalog.ts";
import { readClusterSnapshot } from "../cluster/cluster-view.ts";
import {
  AdminError,
  addExport,
  addVip,
  createVserver,
  deleteVserver,
  moveVserver,
  removeExport,
  removeVip,
  setNodeState,
  setPinned,
  setPriority,
  volumeOwner,
} from "../cluster/desired-state.ts";
import { recordEvents, tierEventSink } from "../cluster/event-log.ts";
import { EVENTS_PAGE_MAX, readEvents } from "../cluster/event-ring.ts";
import { requestLiveMove } from "../cluster/live-move.ts";
import { StorageBalancer } from "../storage/balancer.ts";
import { missingServers, takeCensus, volumeHealth } from "../storage/chunk-census.ts";
import { ChunkMover } from "../storage/chunk-mover.ts";
import { undrainServer } from "../storage/drain.ts";
import { ownerEpochs } from "../storage/membership.ts";
import type { ServerRegistry } from "../storage/server-registry.ts";
import { readTierStatus } from "../storage/tier-status.ts";
import { createVolume, deleteVolume, VolumeError } from "../storage/volumes.ts";
import { type CoordinationStore, StoreError } from "../store/index.ts";
import { parseSize } from "../util/size.ts";
import { Dashboard, DashboardError, isDashboardPath } from "./dashboard-routes.ts";
import { DrainJobs } from "./drain-jobs.ts";
import { EventStreams, STREAMS_MAX } from "./event-stream.ts";
import { AdminMetrics } from "./metrics.ts";
import type { NfsMetrics } from "./nfs-metrics.ts";
import { presentedToken } from "./request-token.ts";
import { buildStatus, type StatusDocument } from "./status.ts";

export const ADMIN_PORT_DEFAULT = 7400;
export const BODY_BYTES_MAX = 64 * 1024;
/** A body past BODY_BYTES_MAX is still read, and dropped, up to this (see `readBody`). */
const DISCARD_BYTES_MAX = 1024 * 1024;

export interface AdminFaults {
  /** Stops a node abruptly (only a one-process cluster can). */
  killNode(nodeId: string): Promise<void>;
}

export interface AdminServerOptions {
  readonly store: CoordinationStore;
  readonly registry: ServerRegistry;
  readonly host?: string;
  readonly port?: number;
  readonly tokenFile: string;
  readonly logger: Logger;
  readonly faults?: AdminFaults;
  /** The NFS calls of the vservers this process serves, for /metrics (none: only cluster-wide ones). */
  readonly nfsMetrics?: NfsMetrics;
}

type Json = unknown;

/** A drain's copy rate cap, as `storage drain --etcd` has it by default. */
const DRAIN_BANDWIDTH_DEFAULT = 200 * 1024 * 1024;

class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** An operator's move; a live one waits for its end and is a conflict if it was rolled back. */
async function moveOrLiveMove(
  store: CoordinationStore,
  vserverId: string,
  request: { node: string; live?: boolean | undefined; force?: boolean | undefined },
): Promise<unknown> {
  if (request.live !== true) {
    if (request.force === true) throw new AdminError("INVALID", "--force applies to a live move only");
    return moveVserver(store, vserverId, request.node);
  }
  const outcome = await requestLiveMove(store, vserverId, request.node, { force: request.force === true });
  if (outcome.state === "failed")
    throw new AdminError(
      "CONFLICT",
      `the live move of ${vserverId} failed and was rolled back: ${outcome.reason ?? "no reason given"}`,
    );
  return outcome;
}

const STATUS_OF: Record<string, number> = { INVALID: 400, NOT_FOUND: 404, CONFLICT: 409, UNAVAILABLE: 503 };
const DASHBOARD_CODES: Record<number, string> = { 404: "NOT_FOUND", 413: "TOO_LARGE", 415: "INVALID" };

/**
 * Reads the token, or makes one (mode 0600) if the file does not exist. A token file others can
 * read is refused, as the storage tier refuses such a secret file: anyone who reads it runs the cluster.
 */
export async function loadOrCreateToken(path: string): Promise<string> {
  const existing = await readTokenFile(path);
  if (existing !== undefined) return existing;
  const token = randomBytes(32).toString("hex");
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, `${token}\n`, { mode: 0o600, flag: "wx" });
  return token;
}

async function readTokenFile(path: string): Promise<string | undefined> {
  const info = await stat(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return undefined;
    throw error;
  });
  if (info === undefined) return undefined;
  if ((info.mode & 0o077) !== 0) {
    const mode = (info.mode & 0o777).toString(8);
    throw new Error(`admin token file ${path} is readable by others (mode ${mode}); chmod 600 it`);
  }
  const token = (await readFile(path, "utf8")).trim();
  if (!/^[0-9a-f]{32,128}$/.test(token)) throw new Error(`${path}: not an admin token (hex digits)`);
  return token;
}

const digest = (text: string): Buffer => createHash("sha256").update(text).digest();
/** Compared as digests, in constant time: the comparison tells nothing of how much of a guess was right. */
const isToken = (given: string, expected: Buffer): boolean => timingSafeEqual(digest(given), expected);

const vserverBody = z
  .object({
    id: z.string(),
    name: z.string().optional(),
    priority: z.number().int().optional(),
    pinned: z.boolean().optional(),
    vips: z.array(z.string()).max(64),
    /** The first is the export "/", each further one "/VOLUME-ID". */
    volume: z.string().optional(),
    volumes: z.array(z.string()).max(64).optional(),
    exports: z.array(z.string()).max(64).optional(),
    nfsPort: z.number().int().optional(),
    mountPort: z.number().int().optional(),
  })
  .strict();
const volumeBody = z
  .object({
    id: z.string(),
    size: z.union([z.number().int().positive(), z.string()]),
    replicationFactor: z.number().int().min(1).max(8).optional(),
  })
  .strict();
const nodeBody = z.object({ node: z.string() }).strict();
const moveBody = z
  .object({ node: z.string(), live: z.boolean().optional(), force: z.boolean().optional() })
  .strict();
const priorityBody = z.object({ priority: z.number().int() }).strict();
const vipBody = z.object({ vip: z.string() }).strict();
const ruleBody = z.object({ rule: z.string() }).strict();

function parse<T>(schema: z.ZodType<T>, body: Json): T {
  const result = schema.safeParse(body);
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`);
    throw new HttpError(400, "INVALID", problems.join("; "));
  }
  return result.data;
}

/** An answer that is not JSON (the metrics text). */
class TextReply {
  readonly contentType: string;
  readonly text: string;
  constructor(contentType: string, text: string) {
    this.contentType = contentType;
    this.text = text;
  }
}

interface Route {
  readonly method: string;
  readonly pattern: RegExp;
  readonly handle: (params: string[], body: Json, query: URLSearchParams) => Promise<Json | TextReply>;
}

/** A route that keeps the response open and writes it itself (the event stream). */
interface StreamRoute {
  readonly method: string;
  readonly pattern: RegExp;
  readonly stream: (
    query: URLSearchParams,
    request: IncomingMessage,
    response: ServerResponse,
  ) => Promise<void>;
}

type AnyRoute = Route | StreamRoute;

/** A whole number from a query parameter, within bounds; undefined when absent. */
function queryNumber(query: URLSearchParams, name: string, max: number): number | undefined {
  const text = query.get(name);
  if (text === null) return undefined;
  const parsed = z
    .string()
    .regex(/^\d{1,16}$/)
    .transform(Number)
    .pipe(z.number().int().max(max))
    .safeParse(text);
  if (!parsed.success)
    throw new HttpError(400, "INVALID", `${name}: a whole number from 0 to ${max}, not "${text}"`);
  return parsed.data;
}

export class AdminServer implements AsyncDisposable {
  readonly url: string;
  readonly token: string;
  private readonly server: Server;

  private constructor(url: string, token: string, server: Server) {
    this.url = url;
    this.token = token;
    this.server = server;
  }

  static async start(options: AdminServerOptions): Promise<AdminServer> {
    const token = await loadOrCreateToken(options.tokenFile);
    const expected = digest(token);
    const log = options.logger.child({ component: "admin-api" });
    const routes = buildRoutes(options, log);
    const dashboard = new Dashboard({
      tokenFile: options.tokenFile,
      isToken: (given) => isToken(given, expected),
    });
    const server = createServer((request, response) => {
      void serve(request, response, expected, routes, dashboard, log);
    });
    server.requestTimeout = 60_000;
    server.headersTimeout = 10_000;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.port ?? ADMIN_PORT_DEFAULT, options.host ?? "127.0.0.1", () => {
        server.off("error", reject);
        resolve();
      });
    });
    const address = server.address() as AddressInfo;
    const host = address.address.includes(":") ? `[${address.address}]` : address.address;
    log.info({ port: address.port }, "admin API listening");
    return new AdminServer(`http://${host}:${address.port}`, token, server);
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

const tooLarge = (): HttpError =>
  new HttpError(413, "TOO_LARGE", `a request body may hold at most ${BODY_BYTES_MAX} bytes`);

/**
 * Reads a JSON body of at most BODY_BYTES_MAX. A longer one is read and dropped up to
 * DISCARD_BYTES_MAX, so that a client still sending it gets the 413 and not a reset; past that the
 * rest is left unread (never destroying the request before the answer is out) and the answer closes
 * the connection (see `serve`).
 */
async function readBody(request: IncomingMessage): Promise<Json> {
  if (Number(request.headers["content-length"] ?? 0) > DISCARD_BYTES_MAX) throw tooLarge();
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of request.iterator({ destroyOnReturn: false })) {
    const buffer = chunk as Buffer;
    bytes += buffer.length;
    if (bytes > DISCARD_BYTES_MAX) throw tooLarge();
    if (bytes <= BODY_BYTES_MAX) chunks.push(buffer);
  }
  if (bytes > BODY_BYTES_MAX) throw tooLarge();
  if (bytes === 0) return {};
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new HttpError(400, "INVALID", "the request body is not JSON");
  }
}

/** `close`: the request was not read to its end, so this connection cannot carry another one. */
function send(response: ServerResponse, status: number, body: Json, close = false): void {
  const text = `${JSON.stringify(body)}\n`;
  response.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    ...(close ? { connection: "close" } : {}),
  });
  response.end(text);
}

async function serve(
  request: IncomingMessage,
  response: ServerResponse,
  expected: Buffer,
  routes: readonly AnyRoute[],
  dashboard: Dashboard,
  log: Logger,
): Promise<void> {
  try {
    const authorized = isToken(presentedToken(request.headers, request.method), expected);
    const url = new URL(request.url ?? "/", "http://localhost");
    const path = url.pathname;
    // The dashboard's pages answer without the token too: with the log-in page.
    if (isDashboardPath(path)) return await dashboard.serve(request, response, path, authorized);
    if (!authorized) {
      request.resume();
      throw new HttpError(
        401,
        "UNAUTHORIZED",
        "no or wrong bearer token (see the admin-token file in the data directory)",
      );
    }
    const route = routes.find((r) => r.method === request.method && r.pattern.test(path));
    if (route === undefined) {
      request.resume();
      const known = routes.some((r) => r.pattern.test(path));
      throw new HttpError(
        known ? 405 : 404,
        known ? "METHOD" : "NOT_FOUND",
        `${request.method} ${path}: no such route`,
      );
    }
    if ("stream" in route) {
      await route.stream(url.searchParams, request, response);
      return;
    }
    const params = (route.pattern.exec(path) ?? []).slice(1).map(decodePathPart);
    const body = await readBody(request);
    const reply = await route.handle(params, body, url.searchParams);
    if (reply instanceof TextReply) {
      response.writeHead(200, {
        "content-type": reply.contentType,
        "content-length": Buffer.byteLength(reply.text),
      });
      response.end(reply.text);
    } else send(response, 200, reply);
  } catch (error) {
    const { status, code, message } = describe(error);
    if (status === 500)
      log.error({ err: error, method: request.method, url: request.url }, "admin request failed");
    else log.debug({ method: request.method, url: request.url, status, code }, "admin request refused");
    if (!response.headersSent)
      send(response, status, { error: { code, message } }, status === 413 && !request.complete);
  }
}

function decodePathPart(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new HttpError(400, "INVALID", `"${part}" is not a well-formed URL path part`);
  }
}

function describe(error: unknown): { status: number; code: string; message: string } {
  if (error instanceof HttpError) return { status: error.status, code: error.code, message: error.message };
  if (error instanceof DashboardError)
    return { status: error.status, code: DASHBOARD_CODES[error.status] ?? "INVALID", message: error.message };
  if (error instanceof AdminError)
    return { status: STATUS_OF[error.code] ?? 500, code: error.code, message: error.message };
  if (error instanceof VolumeError) {
    const code = error.code === "EXISTS" || error.code === "NO_SPACE" ? "CONFLICT" : error.code;
    return { status: STATUS_OF[code] ?? 500, code, message: error.message };
  }
  if (error instanceof StoreError && error.code === "UNAVAILABLE")
    return {
      status: 503,
      code: "UNAVAILABLE",
      message: `the coordination store cannot be reached: ${error.message}`,
    };
  return { status: 500, code: "INTERNAL", message: error instanceof Error ? error.message : String(error) };
}

/** The whole status document. */
export async function clusterStatus(
  store: CoordinationStore,
  registry: ServerRegistry,
): Promise<StatusDocument> {
  const [snapshot, census, owners] = await Promise.all([
    readClusterSnapshot(store),
    takeCensus(store),
    ownerEpochs(store),
  ]);
  const missing = missingServers(census, (id) => registry.isAlive(id));
  return buildStatus(snapshot, volumeHealth(census, missing), owners.epochs);
}

function sizeOf(size: number | string): number {
  if (typeof size === "number") return size;
  try {
    return parseSize(size);
  } catch (error) {
    throw new HttpError(400, "INVALID", error instanceof Error ? error.message : String(error));
  }
}

function buildRoutes(options: AdminServerOptions, log: Logger): AnyRoute[] {
  const { store, registry } = options;
  const balancer = new StorageBalancer({
    store,
    registry,
    mover: new ChunkMover({ store, servers: registry, logger: options.logger }),
    auto: false,
    logger: options.logger,
    onEvent: tierEventSink(store, ADMIN_API_ACTOR, log),
  });
  const metrics = new AdminMetrics(store, options.nfsMetrics, log);
  const streams = new EventStreams(store, log);
  const drains = new DrainJobs({
    store,
    registry,
    logger: options.logger,
    newMover: (onBytes) =>
      new ChunkMover({
        store,
        servers: registry,
        logger: options.logger,
        bandwidthBytesPerSecond: DRAIN_BANDWIDTH_DEFAULT,
        movesPerServerMax: 2,
        onProgress: ({ bytes }) => onBytes(bytes),
      }),
  });
  const id = "([^/]+)";
  const route = (method: string, path: string, handle: Route["handle"]): Route => ({
    method,
    pattern: new RegExp(`^${path}$`),
    handle,
  });
  return [
    route("GET", "/metrics", async () => new TextReply(metrics.contentType, await metrics.text())),
    // Events after ?since=SEQ (oldest first), or the newest; at most ?limit=N (default 100).
    route("GET", "/v1/events", async (_, _body, query) => {
      const since = queryNumber(query, "since", Number.MAX_SAFE_INTEGER);
      const limit = queryNumber(query, "limit", EVENTS_PAGE_MAX) ?? EVENTS_LIMIT_DEFAULT;
      return readEvents(store, since === undefined ? { limit } : { since, limit });
    }),
    {
      method: "GET",
      pattern: /^\/v1\/events\/stream$/,
      stream: async (query, request, response) => {
        const lastId = request.headers["last-event-id"];
        const since =
          typeof lastId === "string" && lastId !== ""
            ? queryNumber(new URLSearchParams({ since: lastId }), "since", Number.MAX_SAFE_INTEGER)
            : queryNumber(query, "since", Number.MAX_SAFE_INTEGER);
        if (!(await streams.serve(request, response, since)))
          throw new HttpError(
            503,
            "UNAVAILABLE",
            `at most ${STREAMS_MAX} event streams at once; retry later`,
          );
      },
    },
    route("GET", "/v1/status", () => clusterStatus(store, registry)),
    // The storage tier: servers with their loads, volumes, chunk moves and drains in progress.
    route("GET", "/v1/storage", async () => ({
      ...(await readTierStatus(store, registry, options.logger)),
      drains: drains.list(),
    })),
    route("POST", `/v1/storage/servers/${id}/drain`, async ([serverId]) => {
      if (!registry.isAlive(serverId!))
        throw new HttpError(
          404,
          "NOT_FOUND",
          `storage server ${serverId} is not registered (unknown or dead)`,
        );
      const job = drains.start(serverId!);
      if (job === undefined)
        throw new HttpError(409, "CONFLICT", `a drain of ${serverId} is already running`);
      return job;
    }),
    route("POST", `/v1/storage/servers/${id}/undrain`, async ([serverId]) => {
      if (drains.list().some((j) => j.serverId === serverId && j.state === "running"))
        throw new HttpError(409, "CONFLICT", `a drain of ${serverId} is running; undrain it once it ends`);
      await undrainServer(store, serverId!);
      return { undrained: serverId };
    }),
    // The storage balancer's plan, and one pass of it (its moves go on in the background).
    route("GET", "/v1/storage/balance", () => balancer.plan()),
    route("POST", "/v1/storage/balance", async () => (await balancer.applyOnce()) ?? (await balancer.plan())),
    route("POST", "/v1/vservers", async (_, body) => {
      const request = parse(vserverBody, body);
      const { volume, volumes, ...rest } = request;
      const all = [...(volume === undefined ? [] : [volume]), ...(volumes ?? [])];
      if (all.length === 0)
        throw new HttpError(400, "INVALID", "give the vserver a volume (volume or volumes)");
      return strip(await createVserver(store, { ...rest, volumes: all }));
    }),
    route("DELETE", `/v1/vservers/${id}`, async ([vserverId]) => {
      await deleteVserver(store, vserverId!);
      return { deleted: vserverId };
    }),
    route("POST", `/v1/vservers/${id}/move`, async ([vserverId], body) => {
      const request = parse(moveBody, body);
      const moved = await moveOrLiveMove(store, vserverId!, request);
      // A live move is recorded by the node that carried it out, with how it went.
      if (request.live !== true) recordOperatorMove(store, vserverId!, request.node, log);
      return moved;
    }),
    route("POST", `/v1/vservers/${id}/pin`, async ([vserverId]) =>
      strip(await setPinned(store, vserverId!, true)),
    ),
    route("POST", `/v1/vservers/${id}/unpin`, async ([vserverId]) =>
      strip(await setPinned(store, vserverId!, false)),
    ),
    route("PUT", `/v1/vservers/${id}/priority`, async ([vserverId], body) =>
      strip(await setPriority(store, vserverId!, parse(priorityBody, body).priority)),
    ),
    route("POST", `/v1/vservers/${id}/vips`, async ([vserverId], body) =>
      strip(await addVip(store, vserverId!, parse(vipBody, body).vip)),
    ),
    route("DELETE", `/v1/vservers/${id}/vips/${id}`, async ([vserverId, vip]) =>
      strip(await removeVip(store, vserverId!, vip!)),
    ),
    route("POST", `/v1/vservers/${id}/exports`, async ([vserverId], body) =>
      strip(await addExport(store, vserverId!, parse(ruleBody, body).rule)),
    ),
    route("DELETE", `/v1/vservers/${id}/exports`, async ([vserverId], body) =>
      strip(await removeExport(store, vserverId!, parse(ruleBody, body).rule)),
    ),
    route("POST", "/v1/volumes", async (_, body) => {
      const request = parse(volumeBody, body);
      return createVolume(store, registry, {
        volumeId: request.id,
        sizeBytes: sizeOf(request.size),
        ...(request.replicationFactor === undefined ? {} : { replicationFactor: request.replicationFactor }),
      });
    }),
    route("DELETE", `/v1/volumes/${id}`, async ([volumeId]) => {
      const owner = await volumeOwner(store, volumeId!);
      if (owner !== undefined)
        throw new AdminError(
          "CONFLICT",
          `volume ${volumeId} belongs to vserver ${owner}; delete the vserver first`,
        );
      await deleteVolume(store, registry, volumeId!);
      // A volume made again under this id gets a new file system.
      await store.delete(clusterKeys.filesystem(volumeId!));
      return { deleted: volumeId };
    }),
    route("POST", `/v1/nodes/${id}/(drain|disable|enable)`, async ([nodeId, verb]) => {
      const state = verb === "drain" ? "draining" : verb === "disable" ? "disabled" : "enabled";
      await setNodeState(store, nodeId!, state);
      return { node: nodeId, operatorState: state };
    }),
    route("POST", "/v1/faults/kill-node", async (_, body) => {
      const { node } = parse(nodeBody, body);
      if (options.faults === undefined)
        throw new HttpError(
          404,
          "NOT_FOUND",
          "fault injection exists only in a one-process cluster (flotilla cluster up)",
        );
      await options.faults.killNode(node);
      return { killed: node };
    }),
  ];
}

/** Who decided, in events the admin API records for operators. */
const ADMIN_API_ACTOR = "admin-api";
const EVENTS_LIMIT_DEFAULT = 100;

function recordOperatorMove(store: CoordinationStore, vserverId: string, node: string, log: Logger): void {
  recordEvents(
    store,
    [
      {
        atMs: Date.now(),
        kind: "move",
        cause: "operator",
        subject: vserverId,
        by: ADMIN_API_ACTOR,
        reason: `an operator moved it to ${node} (flotilla vserver move)`,
        details: { to: node },
      },
    ],
    log,
  );
}

/** A vserver record without its handle key: the key never leaves the cluster. */
function strip<T extends { handleKey: string }>(record: T): Omit<T, "handleKey"> {
  const { handleKey: _key, ...rest } = record;
  return rest;
}
