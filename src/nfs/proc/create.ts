import type { CreateHow } from "../../fs/index.ts";
import { CreateMode, NFS3_CREATEVERFSIZE } from "../nfs3.ts";
import type { NfsProcedure } from "../procedure.ts";
import { type DirOpArgs, readDirOpArgs, readSattr } from "../xdr3.ts";
import { writeCreated, writeCreateFailure } from "./create-reply.ts";

interface CreateArgs {
  readonly where: DirOpArgs;
  readonly how: CreateHow;
}

/** CREATE (RFC 1813 3.3.8): unchecked, guarded, or exclusive with a verifier that makes retries succeed. */
export const create: NfsProcedure<CreateArgs> = {
  name: "CREATE",
  mutating: true,
  metadataChange: true,
  decode(r) {
    const where = readDirOpArgs(r);
    const mode = r.enumOf([CreateMode.UNCHECKED, CreateMode.GUARDED, CreateMode.EXCLUSIVE], "createmode3");
    if (mode === CreateMode.EXCLUSIVE) {
      return { where, how: { kind: "exclusive", verifier: r.opaqueFixed(NFS3_CREATEVERFSIZE).slice() } };
    }
    return {
      where,
      how: { kind: mode === CreateMode.GUARDED ? "guarded" : "unchecked", attrs: readSattr(r) },
    };
  },
  async run(req, args, w) {
    writeCreated(
      req,
      w,
      await req.volume.create(req.cred, req.resolve(args.where.dir), args.where.name, args.how),
    );
    return undefined;
  },
  failure: (req, args, w) => writeCreateFailure(req, args.where.dir, w),
};
