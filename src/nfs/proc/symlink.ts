import type { CreateAttrs } from "../../fs/index.ts";
import { PATH_WIRE_BYTES_MAX } from "../nfs3.ts";
import type { NfsProcedure } from "../procedure.ts";
import { type DirOpArgs, readDirOpArgs, readSattr } from "../xdr3.ts";
import { writeCreated, writeCreateFailure } from "./create-reply.ts";

interface SymlinkArgs {
  readonly where: DirOpArgs;
  readonly attrs: CreateAttrs;
  readonly target: string;
}

/** SYMLINK (RFC 1813 3.3.10). */
export const symlink: NfsProcedure<SymlinkArgs> = {
  name: "SYMLINK",
  mutating: true,
  metadataChange: true,
  decode: (r) => ({
    where: readDirOpArgs(r),
    attrs: readSattr(r),
    target: r.string(PATH_WIRE_BYTES_MAX, "nfspath3"),
  }),
  async run(req, args, w) {
    const dir = req.resolve(args.where.dir);
    writeCreated(req, w, await req.volume.symlink(req.cred, dir, args.where.name, args.target, args.attrs));
    return undefined;
  },
  failure: (req, args, w) => writeCreateFailure(req, args.where.dir, w),
};
