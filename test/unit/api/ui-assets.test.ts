/** The dashboard's files as the browser gets them: JavaScript without types, imports it can load. */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { loadUiAssets, runtimeImports } from "../../../src/api/ui-assets.ts";

test("src/ui: the page module, the pure modules it imports and the style sheet, types stripped", async () => {
  const assets = await loadUiAssets();
  const page = assets.get("page/dashboard.ts");
  assert.ok(page !== undefined, [...assets.keys()].join(", "));
  assert.equal(page.contentType, "text/javascript; charset=utf-8");
  assert.doesNotMatch(page.body, /import type|: StatusDocument/, "types are gone");
  assert.match(page.body, /from "\.\.\/cluster-tables\.ts"/);
  assert.equal(assets.get("dashboard.css")?.contentType, "text/css; charset=utf-8");
  assert.equal(assets.has("tsconfig.json"), false, "only what the browser loads");
  // Runs as JavaScript: a syntax error would throw here.
  new Function(assets.get("coalesce.ts")!.body.replace(/^export /gm, ""));
});

test("the static imports of a module, and none from strings or calls that merely look alike", () => {
  const code = [
    `import { a } from "./a.ts";`,
    `import * as b from '../b.ts';`,
    `import "./side.ts";`,
    `export { c } from "./c.ts";`,
    `export function f() { return g("x from 'y'"); }`,
    `const s = "import x from 'z'";`,
  ].join("\n");
  assert.deepEqual(runtimeImports(code), ["./a.ts", "../b.ts", "./side.ts", "./c.ts"]);
});

test("a module importing what the browser cannot load from src/ui fails the load", async () => {
  const dir = await mkdtemp(join(tmpdir(), "flotilla-ui-"));
  try {
    await mkdir(join(dir, "page"));
    await writeFile(
      join(dir, "page", "p.ts"),
      `import { x } from "../../api/status.ts";\nconst y: number = x;\n`,
    );
    await assert.rejects(loadUiAssets(dir), /page\/p\.ts imports "\.\.\/\.\.\/api\/status\.ts"/);
    await writeFile(join(dir, "page", "p.ts"), `import { z } from "zod";\n`);
    await assert.rejects(loadUiAssets(dir), /imports "zod"/);
    await writeFile(
      join(dir, "page", "p.ts"),
      `import type { Z } from "zod";\nimport { q } from "../q.ts";\nexport const v: Z = q;\n`,
    );
    await writeFile(join(dir, "q.ts"), "export const q = 1;\n");
    assert.deepEqual([...(await loadUiAssets(dir)).keys()], ["page/p.ts", "q.ts"]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
