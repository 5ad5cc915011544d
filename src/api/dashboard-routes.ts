/**
 * The web dashboard's side of the admin API: `/` sends a browser to `/ui`; `/ui` is the dashboard
 * for a browser holding the token's cookie and the log-in page for any other; POST /ui/login
 * checks a token and sets the cookie, POST /ui/logout clears it; /ui/app/ serves src/ui's style
 * sheet and modules, which hold no cluster data and load before log-in. The data itself comes
 * from the JSON routes, which take the cookie for reads (request-token.ts).
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import { dashboardPage, loginPage, UI_ASSETS_PATH } from "../ui/pages.ts";
import { clearedCookie, sessionCookie } from "./request-token.ts";
import { loadUiAssets, type UiAsset } from "./ui-assets.ts";

/** A log-in form holds one token of at most 128 hex digits. */
const FORM_BYTES_MAX = 4 * 1024;

/** Only the admin API's own files: no inline script or style, no other origin, no framing. */
const PAGE_HEADERS: OutgoingHttpHeaders = {
  "content-type": "text/html; charset=utf-8",
  "cache-control": "no-store",
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

export class DashboardError extends Error {
  override readonly name = "DashboardError";
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export interface DashboardOptions {
  /** Named on the log-in page: where the operator finds the token. */
  readonly tokenFile: string;
  /** Whether a token given in the log-in form is the admin token. */
  readonly isToken: (token: string) => boolean;
  /** Where src/ui is (tests point it elsewhere). */
  readonly uiDir?: string;
}

export function isDashboardPath(path: string): boolean {
  return path === "/" || path === "/ui" || path.startsWith("/ui/");
}

function reply(response: ServerResponse, status: number, headers: OutgoingHttpHeaders, body = ""): void {
  response.writeHead(status, { ...headers, "content-length": Buffer.byteLength(body) });
  response.end(body);
}

function redirect(response: ServerResponse, location: string, cookie?: string): void {
  reply(response, 303, {
    location,
    "cache-control": "no-store",
    ...(cookie === undefined ? {} : { "set-cookie": cookie }),
  });
}

async function readForm(request: IncomingMessage): Promise<URLSearchParams> {
  const type = request.headers["content-type"] ?? "";
  if (!type.startsWith("application/x-www-form-urlencoded"))
    throw new DashboardError(415, "the log-in form is sent as application/x-www-form-urlencoded");
  let text = "";
  for await (const chunk of request.iterator({ destroyOnReturn: false })) {
    text += (chunk as Buffer).toString("utf8");
    if (text.length > FORM_BYTES_MAX)
      throw new DashboardError(413, `a log-in form holds at most ${FORM_BYTES_MAX} bytes`);
  }
  return new URLSearchParams(text);
}

export class Dashboard {
  private readonly options: DashboardOptions;
  private assets: Promise<Map<string, UiAsset>> | undefined;

  constructor(options: DashboardOptions) {
    this.options = options;
  }

  /** `authorized`: the request presented the admin token (bearer or cookie). */
  async serve(
    request: IncomingMessage,
    response: ServerResponse,
    path: string,
    authorized: boolean,
  ): Promise<void> {
    const method = request.method ?? "GET";
    const logIn = path === "/ui/login" && method === "POST";
    // Only the log-in form has a body worth reading; any other is drained so the connection goes on.
    if (!logIn) request.resume();
    if (path === "/" && method === "GET") return redirect(response, "/ui");
    if (path === "/ui" && method === "GET")
      return reply(response, 200, PAGE_HEADERS, authorized ? dashboardPage() : loginPage(this.options));
    if (logIn) return this.logIn(request, response);
    if (path === "/ui/logout" && method === "POST") return redirect(response, "/ui", clearedCookie());
    if (path.startsWith(UI_ASSETS_PATH) && method === "GET") return this.asset(response, path);
    throw new DashboardError(404, `${method} ${path}: no such page`);
  }

  private async logIn(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const token = ((await readForm(request)).get("token") ?? "").trim();
    if (!this.options.isToken(token))
      return reply(
        response,
        401,
        PAGE_HEADERS,
        loginPage({ ...this.options, message: "That is not the admin token. Try again." }),
      );
    redirect(response, "/ui", sessionCookie(token));
  }

  private async asset(response: ServerResponse, path: string): Promise<void> {
    // Loaded at the first request and kept; a failed load is tried again at the next.
    this.assets ??= loadUiAssets(this.options.uiDir).catch((error: unknown) => {
      this.assets = undefined;
      throw error;
    });
    const asset = (await this.assets).get(path.slice(UI_ASSETS_PATH.length));
    if (asset === undefined) throw new DashboardError(404, `${path}: no such file`);
    reply(
      response,
      200,
      { "content-type": asset.contentType, "cache-control": "no-cache", "x-content-type-options": "nosniff" },
      asset.body,
    );
  }
}
