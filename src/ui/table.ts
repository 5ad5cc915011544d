/**
 * One table of the dashboard: columns with a title and a cell each, rows with data attributes
 * (what a script or a test can find a row by: `data-vserver="vs1"`), a line for no rows. Pure.
 */
import { escapeHtml, type HtmlValue, html, SafeHtml } from "./html.ts";

export interface Column<T> {
  readonly title: string;
  readonly cell: (row: T) => HtmlValue;
}

export interface TableOptions<T> {
  /** What an empty table says instead. */
  readonly empty: string;
  /** data-NAME attributes of a row, by NAME. */
  readonly data?: (row: T) => Readonly<Record<string, string | number | boolean | null>>;
}

const DATA_NAME = /^[a-z][a-z0-9-]*$/;

function dataAttributes(values: Readonly<Record<string, string | number | boolean | null>>): SafeHtml {
  const parts = Object.entries(values).map(([name, value]) => {
    if (!DATA_NAME.test(name)) throw new Error(`"${name}" is not a data attribute name`);
    return ` data-${name}="${escapeHtml(String(value))}"`;
  });
  return new SafeHtml(parts.join(""));
}

export function table<T>(
  columns: readonly Column<T>[],
  rows: readonly T[],
  options: TableOptions<T>,
): SafeHtml {
  if (rows.length === 0) return html`<p class="empty">${options.empty}</p>`;
  const head = columns.map((c) => html`<th>${c.title}</th>`);
  const body = rows.map((row) => {
    const data = options.data === undefined ? "" : dataAttributes(options.data(row));
    return html`<tr${data}>${columns.map((c) => html`<td>${c.cell(row)}</td>`)}</tr>`;
  });
  return html`<table><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
}

export type Tone = "ok" | "warn" | "bad" | "idle";

/** A state word in a coloured badge. */
export function badge(text: string, tone: Tone): SafeHtml {
  return html`<span class="badge ${tone}">${text}</span>`;
}

/** A bar of done out of total, with the words beside it. */
export function progress(done: number, total: number, words: string): SafeHtml {
  return html`<progress value="${Math.max(0, Math.min(done, total))}" max="${Math.max(total, 1)}"></progress> ${words}`;
}
