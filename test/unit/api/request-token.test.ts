/** The token a request presents: the bearer header always, the dashboard's cookie for reads only. */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  clearedCookie,
  parseCookies,
  presentedToken,
  SESSION_COOKIE,
  sessionCookie,
} from "../../../src/api/request-token.ts";

const TOKEN = "ab".repeat(32);

test("cookies by name, the first of a name winning, junk skipped", () => {
  const cookies = parseCookies(`a=1; ${SESSION_COOKIE}=${TOKEN}; junk; =x; a=2`);
  assert.equal(cookies.get("a"), "1");
  assert.equal(cookies.get(SESSION_COOKIE), TOKEN);
  assert.equal(cookies.size, 2);
  assert.equal(parseCookies(undefined).size, 0);
});

test("the bearer header is taken for any method", () => {
  assert.equal(presentedToken({ authorization: `Bearer ${TOKEN} ` }, "POST"), TOKEN);
  assert.equal(presentedToken({ authorization: "Basic xyz" }, "GET"), "");
});

test("the cookie is taken for GET and HEAD only: a cross-site form could POST with it", () => {
  const headers = { cookie: `${SESSION_COOKIE}=${TOKEN}` };
  assert.equal(presentedToken(headers, "GET"), TOKEN);
  assert.equal(presentedToken(headers, "HEAD"), TOKEN);
  assert.equal(presentedToken(headers, "POST"), "");
  assert.equal(presentedToken(headers, "DELETE"), "");
  assert.equal(presentedToken(headers, undefined), "");
  assert.equal(
    presentedToken({ authorization: "Bearer other", ...headers }, "GET"),
    "other",
    "the header first",
  );
});

test("the cookie is HttpOnly and SameSite=Strict, for this browser session; clearing expires it", () => {
  assert.equal(sessionCookie(TOKEN), `${SESSION_COOKIE}=${TOKEN}; Path=/; HttpOnly; SameSite=Strict`);
  assert.throws(() => sessionCookie("a;b"), /hex digits/);
  assert.match(
    clearedCookie(),
    new RegExp(`^${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0$`),
  );
});
