/**
 * The dashboard in a real browser (Debian's chromium, headless, driven by playwright-core) on a
 * real cluster (`flotilla cluster up` as a process): the log-in page takes the token; the page
 * shows the nodes and vs1 on its node, and a user's vserver name as text, never as markup; then
 * vs1's node is killed and the page, on its own (events and polling), shows that node dead, vs1
 * running on another and the failover in its event list.
 *
 * Without chromium this test fails, saying how to install it: a skipped browser test is a
 * dashboard nobody checked.
 */
import assert from "node:assert/strict";
import { accessSync, constants } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type Browser, chromium, type Page } from "playwright-core";
import { spawnClusterUp } from "../support/cluster-up-process.ts";
import type { FlotillaProcess } from "../support/flotilla-process.ts";

const CHROMIUM = process.env.FLOTILLA_CHROMIUM ?? "/usr/bin/chromium";
// Below Linux's ephemeral range (32768 on): a port there may be some connection's own end.
const NFS_PORT = 20_000 + Math.floor(Math.random() * 12_000);
const MOUNT_PORT = NFS_PORT + 1;
const ADMIN_PORT = NFS_PORT + 2;
const API = `http://127.0.0.1:${ADMIN_PORT}`;
/** Each wait on the page; a failover on a loaded machine takes a few seconds, not thirty. */
const WAIT_MS = 30_000;
/** A name a user could give: if the page ever put it in as markup, the script would run. */
const EVIL_NAME = `<img src=x onerror="window.flotillaXss=1">`;
/** Where to keep a screenshot of the page after the failover, to look at it (none by default). */
const SCREENSHOT = process.env.FLOTILLA_DASHBOARD_SCREENSHOT;

let dir: string;
let cluster: FlotillaProcess | undefined;
let browser: Browser | undefined;

function chromiumPath(): string {
  try {
    accessSync(CHROMIUM, constants.X_OK);
  } catch {
    throw new Error(
      `the dashboard's browser test needs chromium at ${CHROMIUM}: apt-get install chromium (.ci/run installs it), or set FLOTILLA_CHROMIUM`,
    );
  }
  return CHROMIUM;
}

async function api(token: string, method: string, path: string, body?: unknown): Promise<unknown> {
  const response = await fetch(`${API}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const json: unknown = await response.json();
  assert.equal(response.status, 200, `${method} ${path}: ${JSON.stringify(json)}`);
  return json;
}

/** What the page shows, for a failure message: a wait that timed out says what it saw instead. */
async function shown(page: Page): Promise<string> {
  return page
    .locator("body")
    .textContent({ timeout: 2_000 })
    .then((text) => text ?? "")
    .catch((error: unknown) => `(page unreadable: ${String(error)})`);
}

async function waitFor(page: Page, what: string, selector: string): Promise<void> {
  try {
    await page.waitForSelector(selector, { timeout: WAIT_MS });
  } catch (error) {
    throw new Error(`${what}: no ${selector} within ${WAIT_MS} ms; the page shows:\n${await shown(page)}`, {
      cause: error,
    });
  }
}

describe("the dashboard in a browser", { timeout: 180_000 }, () => {
  before(async () => {
    const executablePath = chromiumPath();
    dir = await mkdtemp(join(tmpdir(), "flotilla-dashboard-"));
    cluster = await spawnClusterUp(join(dir, "data"), {
      nfsPort: NFS_PORT,
      mountPort: MOUNT_PORT,
      adminPort: ADMIN_PORT,
    });
    // As root chromium refuses its sandbox; the page is our own, on loopback.
    browser = await chromium.launch({
      executablePath,
      headless: true,
      args: ["--no-sandbox"],
      timeout: WAIT_MS,
    });
  });
  after(async () => {
    await browser?.close();
    if (cluster !== undefined) assert.equal(await cluster.stop("SIGINT"), 0, cluster.output());
    await rm(dir, { recursive: true, force: true });
  });

  test("log in with the token; a node killed shows dead, its vserver on another node", async () => {
    const token = (await readFile(join(dir, "data", "admin-token"), "utf8")).trim();
    await api(token, "POST", "/v1/volumes", { id: "evil-data", size: "64M" });
    await api(token, "POST", "/v1/vservers", {
      id: "evil",
      name: EVIL_NAME,
      vips: ["127.0.77.1", "127.0.77.2"],
      volume: "evil-data",
      nfsPort: NFS_PORT,
      mountPort: MOUNT_PORT,
    });

    const context = await browser!.newContext();
    const page = await context.newPage();
    page.setDefaultTimeout(WAIT_MS);
    const pageErrors: string[] = [];
    page.on("pageerror", (error) => pageErrors.push(error.message));
    page.on("response", (response) => {
      if (response.status() >= 400) pageErrors.push(`${response.status()} ${response.url()}`);
    });

    await page.goto(`${API}/`);
    assert.equal(new URL(page.url()).pathname, "/ui", "/ redirects to the dashboard");
    assert.equal(await page.locator("#nodes").count(), 0, "no data before log-in");
    await page.fill("#token", "0".repeat(64));
    await page.click("button[type=submit]");
    await waitFor(page, "a wrong token refused", "p.error");
    assert.deepEqual(pageErrors.splice(0), [`401 ${API}/ui/login`]);
    await page.fill("#token", token);
    await page.click("button[type=submit]");
    for (const node of ["n1", "n2", "n3"])
      await waitFor(page, `node ${node} alive`, `#nodes tr[data-node="${node}"][data-alive="true"]`);
    const cookies = await context.cookies();
    assert.ok(
      cookies.some((c) => c.httpOnly && c.sameSite === "Strict"),
      "the token is kept in an HttpOnly cookie",
    );
    const running = `#vservers tr[data-vserver="vs1"][data-state="running"]`;
    await waitFor(page, "vs1 running", running);
    const victim = await page.locator(running).getAttribute("data-node");
    assert.ok(victim !== null && /^n[123]$/.test(victim), `vs1 runs on a node: ${victim}`);
    await waitFor(page, "the live event stream", "#connection.ok");
    await waitFor(page, "the load chart", `#load-chart svg g[data-series="${victim}"] polyline`);

    const evil = page.locator(`#vservers tr[data-vserver="evil"] td`).first();
    await evil.waitFor();
    assert.match((await evil.textContent()) ?? "", /<img src=x onerror=/, "a vserver's name shows as text");
    assert.equal(await page.locator("#vservers img").count(), 0, "and never as markup");
    assert.equal(await page.evaluate("'flotillaXss' in window"), false);

    await api(token, "POST", "/v1/faults/kill-node", { node: victim });
    await waitFor(page, `${victim} dead`, `#nodes tr[data-node="${victim}"][data-alive="false"]`);
    await waitFor(page, "vs1 running elsewhere", `${running}:not([data-node="${victim}"])`);
    await waitFor(page, "the failover event", `#events tr[data-kind="failover"][data-subject="vs1"]`);
    assert.match(
      (await page.locator(`#events tr[data-kind="failover"][data-subject="vs1"]`).first().textContent()) ??
        "",
      new RegExp(`node ${victim} lost its lease`),
    );
    if (SCREENSHOT !== undefined) await page.screenshot({ path: SCREENSHOT, fullPage: true });
    assert.deepEqual(pageErrors, [], "the page ran without errors");
    await context.close();
  });
});
