/**
 * The dashboard's two pages as the admin API serves them: the log-in form, and the shell of the
 * dashboard whose sections its script fills. No inline script or style: the server's
 * Content-Security-Policy allows only its own files, so markup that slipped through escaping still
 * could not run. Pure.
 */
import { html, type SafeHtml } from "./html.ts";

/** Where the admin API serves src/ui/ (its style sheet and scripts). */
export const UI_ASSETS_PATH = "/ui/app/";

function page(title: string, body: SafeHtml, script?: string): string {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<link rel="stylesheet" href="${UI_ASSETS_PATH}dashboard.css">
<link rel="icon" href="${UI_ASSETS_PATH}favicon.svg" type="image/svg+xml">
${script === undefined ? "" : html`<script type="module" src="${UI_ASSETS_PATH}${script}"></script>`}
</head>
<body>
${body}
</body>
</html>
`.text;
}

export interface LoginPageOptions {
  /** The token file the admin API reads, so the operator knows what to paste. */
  readonly tokenFile: string;
  /** Why the last try failed, if it did. */
  readonly message?: string;
}

export function loginPage(options: LoginPageOptions): string {
  return page(
    "Flotilla: log in",
    html`<main class="login">
<h1>Flotilla</h1>
<form method="post" action="/ui/login">
<label for="token">Admin token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Log in</button>
</form>
${options.message === undefined ? "" : html`<p class="error" role="alert">${options.message}</p>`}
<p class="muted">The token is the one the <code>flotilla</code> verbs use (<code>--token-file</code>): the
file <code>${options.tokenFile}</code> on the machine running the admin API.</p>
</main>`,
  );
}

/**
 * The dashboard's sections, in order: the element id the script fills, the title, and whether it
 * takes the page's whole width (tables too wide for half of it).
 */
export const DASHBOARD_SECTIONS: readonly (readonly [string, string, "wide"?])[] = [
  ["nodes", "Nodes"],
  ["load-chart", "Load per core"],
  ["vservers", "Vservers", "wide"],
  ["vips", "VIPs"],
  ["ports", "Ports"],
  ["routes", "Routes"],
  ["volumes", "Volumes"],
  ["servers", "Storage servers", "wide"],
  ["moves", "Chunk moves"],
  ["drains", "Drains"],
  ["migrations", "Live moves"],
  ["events", "Events", "wide"],
];

/** A section of the dashboard: its id is what the script fills. */
function section(id: string, title: string, wide: boolean): SafeHtml {
  return html`<section${wide ? html` class="wide"` : ""}><h2>${title}</h2><div id="${id}" class="body"><p class="empty">loading…</p></div></section>`;
}

export function dashboardPage(): string {
  return page(
    "Flotilla",
    html`<header>
<h1>Flotilla</h1>
<span id="master" class="muted"></span>
<span id="connection" class="badge idle">connecting</span>
<span id="updated" class="muted"></span>
<form method="post" action="/ui/logout"><button type="submit">Log out</button></form>
</header>
<p id="problem" class="error" role="alert" hidden></p>
<main class="dashboard">
${DASHBOARD_SECTIONS.map(([id, title, wide]) => section(id, title, wide === "wide"))}
</main>`,
    "page/dashboard.ts",
  );
}
