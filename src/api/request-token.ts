/**
 * The admin token a request presents: the bearer header (scripts, the `flotilla` verbs) or, for
 * reads only, the dashboard's HttpOnly cookie. A browser sends a cookie along with any request a
 * page makes to this host, even one from another site's form; a cookie that authorizes only GET
 * (the dashboard never changes anything) keeps that from ever moving a vserver, and SameSite=Strict
 * keeps other sites' pages from reading with it. Pure.
 */
import type { IncomingHttpHeaders } from "node:http";

export const SESSION_COOKIE = "flotilla-admin-token";
/** More cookies than this in one header are not looked through (node bounds the header's size). */
const COOKIES_MAX = 64;

/** The cookies of a Cookie header, by name; the first of a name wins, as browsers send the most specific first. */
export function parseCookies(header: string | undefined): Map<string, string> {
  const cookies = new Map<string, string>();
  if (header === undefined) return cookies;
  for (const part of header.split(";").slice(0, COOKIES_MAX)) {
    const pair = part.trim();
    const eq = pair.indexOf("=");
    if (eq <= 0) continue;
    const name = pair.slice(0, eq);
    if (!cookies.has(name)) cookies.set(name, pair.slice(eq + 1));
  }
  return cookies;
}

/** Methods a cookie may authorize: those that change nothing. */
const READ_METHODS = new Set(["GET", "HEAD"]);

/** The token presented, "" for none. */
export function presentedToken(headers: IncomingHttpHeaders, method: string | undefined): string {
  const header = headers.authorization ?? "";
  if (header.startsWith("Bearer ")) return header.slice("Bearer ".length).trim();
  if (method === undefined || !READ_METHODS.has(method)) return "";
  return parseCookies(headers.cookie).get(SESSION_COOKIE) ?? "";
}

const ATTRIBUTES = "Path=/; HttpOnly; SameSite=Strict";

/** Set-Cookie for a logged-in browser: for this browser session only (no expiry). */
export function sessionCookie(token: string): string {
  if (!/^[0-9a-f]+$/.test(token)) throw new Error("an admin token is hex digits");
  return `${SESSION_COOKIE}=${token}; ${ATTRIBUTES}`;
}

export function clearedCookie(): string {
  return `${SESSION_COOKIE}=; ${ATTRIBUTES}; Max-Age=0`;
}
