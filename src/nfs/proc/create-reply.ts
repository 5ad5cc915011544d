import type { CreateResult } from "../../fs/index.ts";
import type { XdrWriter } from "../../xdr/index.ts";
import { NFS3_OK } from "../nfs3.ts";
import type { NfsRequest } from "../procedure.ts";
import { writePostOpAttr, writePostOpFh, writeWcc } from "../xdr3.ts";

/** The success body CREATE, MKDIR, SYMLINK and MKNOD share: handle, attributes, directory wcc. */
export function writeCreated(req: NfsRequest, w: XdrWriter, result: CreateResult): void {
  w.u32(NFS3_OK);
  writePostOpFh(w, req.handleOf(result.ref));
  writePostOpAttr(w, result.attr, req.fsid);
  writeWcc(w, result.dir, req.fsid);
}

/** Their failure body: the directory's wcc, as much of it as can be had. */
export async function writeCreateFailure(req: NfsRequest, dir: Uint8Array, w: XdrWriter): Promise<void> {
  writeWcc(w, { after: await req.attrsIfAny(dir) }, req.fsid);
}
