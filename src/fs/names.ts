import { utf8 } from "./bytes.ts";
import { FsError } from "./errors.ts";
import { NAME_BYTES_MAX } from "./layout.ts";

/** Why a name is checked: a new entry may not be "." or ".." (EXIST); a removed or renamed one neither (INVAL). */
export type NameUse = "lookup" | "new" | "existing";

/** Validates a directory entry name and returns its UTF-8 bytes. */
export function checkName(name: string, use: NameUse): Uint8Array {
  if (typeof name !== "string") throw new FsError("INVAL", "name is not a string");
  const bytes = utf8(name);
  if (bytes.length > NAME_BYTES_MAX)
    throw new FsError("NAMETOOLONG", `name of ${bytes.length} bytes exceeds ${NAME_BYTES_MAX}`);
  if (bytes.length === 0) throw new FsError("INVAL", "empty name");
  if (name.includes("/")) throw new FsError("INVAL", `name "${name}" contains "/"`);
  if (name.includes("\0")) throw new FsError("INVAL", "name contains NUL");
  if (name === "." || name === "..") {
    if (use === "new") throw new FsError("EXIST", `"${name}" always exists`);
    if (use === "existing") throw new FsError("INVAL", `"${name}" cannot be removed or renamed`);
  }
  return bytes;
}
