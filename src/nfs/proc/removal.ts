import type { Credentials, NodeRef, Volume, Wcc } from "../../fs/index.ts";
import { NFS3_OK } from "../nfs3.ts";
import type { NfsProcedure } from "../procedure.ts";
import { type DirOpArgs, readDirOpArgs, writeWcc } from "../xdr3.ts";

type Removal = (volume: Volume, cred: Credentials, dir: NodeRef, name: string) => Promise<Wcc>;

/** REMOVE and RMDIR differ only in what the file system is asked: both answer the directory's wcc. */
export function removalProcedure(name: "REMOVE" | "RMDIR", removeEntry: Removal): NfsProcedure<DirOpArgs> {
  return {
    name,
    mutating: true,
    metadataChange: true,
    decode: readDirOpArgs,
    async run(req, args, w) {
      const wcc = await removeEntry(req.volume, req.cred, req.resolve(args.dir), args.name);
      w.u32(NFS3_OK);
      writeWcc(w, wcc, req.fsid);
      return undefined;
    },
    async failure(req, args, w) {
      writeWcc(w, { after: await req.attrsIfAny(args.dir) }, req.fsid);
    },
  };
}
