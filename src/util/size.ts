const UNIT_BYTES: Record<string, number> = {
  "": 1,
  K: 1024,
  M: 1024 ** 2,
  G: 1024 ** 3,
  T: 1024 ** 4,
};

/** Parses sizes like "4096", "64M", "10G", "1.5T", "10GiB" (binary units). Throws RangeError on bad input. */
export function parseSize(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$/i.exec(text);
  if (match === null) throw new RangeError(`not a size: "${text}" (expected e.g. 512M, 10G, 1T)`);
  const unit = UNIT_BYTES[(match[2] ?? "").toUpperCase()];
  if (unit === undefined) throw new RangeError(`unknown size unit in "${text}"`);
  const bytes = Math.floor(Number(match[1]) * unit);
  if (!Number.isSafeInteger(bytes)) throw new RangeError(`size too large: "${text}"`);
  return bytes;
}

export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}
