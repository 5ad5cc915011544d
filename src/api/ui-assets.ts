/**
 * The files of src/ui the browser loads: the style sheet, the icon and the dashboard's modules. The modules
 * are TypeScript, type-checked with the rest; here their types are stripped (as node strips its
 * own) so the browser gets JavaScript with the same line numbers. Read once, on the first request
 * for one, and kept: a few dozen KiB.
 */
import { readdir, readFile } from "node:fs/promises";
import { stripTypeScriptTypes } from "node:module";
import { extname, posix } from "node:path";
import { fileURLToPath } from "node:url";

export const UI_DIR = fileURLToPath(new URL("../ui/", import.meta.url));
/** src/ui holds a handful of files; more than this is a mistake (a build output copied in). */
const ASSETS_MAX = 64;

export interface UiAsset {
  readonly contentType: string;
  readonly body: string;
}

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  ".ts": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
};

/** The specifiers of a module's static imports and re-exports (type-only ones are gone by now). */
export function runtimeImports(code: string): string[] {
  const found: string[] = [];
  // An import clause holds names, braces, commas, `as` and `*`: never a quote, bracket or `=`.
  const pattern =
    /^\s*(?:import|export)\s+[^;()="'`]*?\bfrom\s*["']([^"']+)["']|^\s*import\s*["']([^"']+)["']/gm;
  for (const match of code.matchAll(pattern)) found.push((match[1] ?? match[2])!);
  return found;
}

/**
 * Every asset by its path under src/ui ("page/dashboard.ts"). Fails when a module imports what the
 * browser could not load from here: a bare package name, or a file outside src/ui.
 */
export async function loadUiAssets(dir: string = UI_DIR): Promise<Map<string, UiAsset>> {
  const names = (await readdir(dir, { recursive: true }))
    .map((name) => name.split("\\").join("/"))
    .filter((name) => CONTENT_TYPES[extname(name)] !== undefined)
    .sort();
  if (names.length > ASSETS_MAX) throw new Error(`${dir}: ${names.length} files, more than ${ASSETS_MAX}`);
  const assets = new Map<string, UiAsset>();
  for (const name of names) {
    const source = await readFile(`${dir}/${name}`, "utf8");
    const body = name.endsWith(".ts") ? stripTypeScriptTypes(source, { mode: "strip" }) : source;
    assets.set(name, { contentType: CONTENT_TYPES[extname(name)]!, body });
  }
  for (const [name, asset] of assets) {
    if (!name.endsWith(".ts")) continue;
    for (const specifier of runtimeImports(asset.body)) {
      const target = posix.normalize(posix.join(posix.dirname(name), specifier));
      if (!specifier.startsWith(".") || !assets.has(target))
        throw new Error(`src/ui/${name} imports "${specifier}", which the browser cannot load from src/ui`);
    }
  }
  return assets;
}
