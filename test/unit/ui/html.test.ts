/** Escaping: what a vserver name or an event reason holds never becomes markup. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { escapeHtml, html, SafeHtml } from "../../../src/ui/html.ts";

test("the five characters that make markup are escaped", () => {
  assert.equal(
    escapeHtml(`<a href="x" onclick='y'>&</a>`),
    "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;",
  );
});

test("values in a template are escaped, built markup is not, lists are joined, absent values left out", () => {
  const name = `<img src=x onerror="alert(1)">`;
  const cell = html`<td title="${name}">${name}</td>`;
  assert.equal(
    cell.text,
    '<td title="&lt;img src=x onerror=&quot;alert(1)&quot;&gt;">&lt;img src=x onerror=&quot;alert(1)&quot;&gt;</td>',
  );
  assert.equal(html`<tr>${[cell, html`<td>${3}</td>`]}</tr>`.text, `<tr>${cell.text}<td>3</td></tr>`);
  assert.equal(html`a${null}b${undefined}c${false}d${0}`.text, "abcd0");
  assert.ok(html`x` instanceof SafeHtml);
});

test("a string that looks like markup is still text: only SafeHtml passes through", () => {
  assert.equal(html`${"<b>" as string}`.text, "&lt;b&gt;");
  assert.equal(html`${new SafeHtml("<b>")}`.text, "<b>");
});
