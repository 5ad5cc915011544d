import { removalProcedure } from "./removal.ts";

/** RMDIR (RFC 1813 3.3.13): an empty directory. */
export const rmdir = removalProcedure("RMDIR", (volume, cred, dir, name) => volume.rmdir(cred, dir, name));
