import { removalProcedure } from "./removal.ts";

/** REMOVE (RFC 1813 3.3.12): a non-directory entry. */
export const remove = removalProcedure("REMOVE", (volume, cred, dir, name) => volume.remove(cred, dir, name));
