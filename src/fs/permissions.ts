import { FsError } from "./errors.ts";
import { ACCESS, type Credentials, type FileType } from "./types.ts";

/** The attributes a permission decision depends on. */
export interface Owned {
  readonly type: FileType;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
}

export const R_OK = 4;
export const W_OK = 2;
export const X_OK = 1;

export function isRoot(cred: Credentials): boolean {
  return cred.uid === 0;
}

export function inGroup(cred: Credentials, gid: number): boolean {
  return cred.gid === gid || cred.gids.includes(gid);
}

/** The rwx bits (R_OK|W_OK|X_OK) `cred` holds on `obj`: the one place permissions are decided. */
export function permittedBits(obj: Owned, cred: Credentials): number {
  if (isRoot(cred)) {
    const anyExec = (obj.mode & 0o111) !== 0 || obj.type === "dir";
    return R_OK | W_OK | (anyExec ? X_OK : 0);
  }
  if (cred.uid === obj.uid) return (obj.mode >> 6) & 7;
  if (inGroup(cred, obj.gid)) return (obj.mode >> 3) & 7;
  return obj.mode & 7;
}

export function requirePermission(obj: Owned, cred: Credentials, want: number, what: string): void {
  if ((permittedBits(obj, cred) & want) !== want) throw new FsError("ACCES", `permission denied: ${what}`);
}

/** A sticky directory lets only the entry's owner, the directory's owner or root remove or replace it. */
export function requireStickyAllows(dir: Owned, entry: Owned, cred: Credentials, name: string): void {
  if ((dir.mode & 0o1000) === 0 || isRoot(cred)) return;
  if (cred.uid === entry.uid || cred.uid === dir.uid) return;
  throw new FsError("PERM", `"${name}" is in a sticky directory and belongs to someone else`);
}

/** The NFS ACCESS bits in `mask` that `cred` is granted on `obj`. */
export function grantedAccess(obj: Owned, cred: Credentials, mask: number): number {
  const bits = permittedBits(obj, cred);
  let granted = 0;
  if (bits & R_OK) granted |= ACCESS.READ;
  if (bits & W_OK) granted |= ACCESS.MODIFY | ACCESS.EXTEND | (obj.type === "dir" ? ACCESS.DELETE : 0);
  if (bits & X_OK) granted |= obj.type === "dir" ? ACCESS.LOOKUP : ACCESS.EXECUTE;
  return granted & mask;
}
