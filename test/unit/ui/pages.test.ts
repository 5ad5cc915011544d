/** The two pages: no inline script or style; the log-in page names the token file and escapes it. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { DASHBOARD_SECTIONS, dashboardPage, loginPage, UI_ASSETS_PATH } from "../../../src/ui/pages.ts";

test("the log-in page posts the token to /ui/login and says where the token is", () => {
  const page = loginPage({ tokenFile: "/srv/<data>/admin-token" });
  assert.match(page, /<form method="post" action="\/ui\/login">/);
  assert.match(page, /<input id="token" name="token" type="password"/);
  assert.match(page, /<code>\/srv\/&lt;data&gt;\/admin-token<\/code>/);
  assert.doesNotMatch(page, /class="error"/);
  assert.doesNotMatch(page, /<script/, "the log-in page needs no script");
  assert.match(
    loginPage({ tokenFile: "t", message: "wrong <token>" }),
    /<p class="error" role="alert">wrong &lt;token&gt;<\/p>/,
  );
});

test("the dashboard loads its module and style sheet from the API, and has a section for each view", () => {
  const page = dashboardPage();
  assert.ok(page.includes(`<script type="module" src="${UI_ASSETS_PATH}page/dashboard.ts"></script>`));
  assert.ok(page.includes(`<link rel="stylesheet" href="${UI_ASSETS_PATH}dashboard.css">`));
  for (const [id] of DASHBOARD_SECTIONS) assert.match(page, new RegExp(`<div id="${id}" class="body">`));
  assert.doesNotMatch(page, /<script>|<style|style="/, "nothing inline: the CSP forbids it");
});
