import type { CreateAttrs } from "../../fs/index.ts";
import type { NfsProcedure } from "../procedure.ts";
import { type DirOpArgs, readDirOpArgs, readSattr } from "../xdr3.ts";
import { writeCreated, writeCreateFailure } from "./create-reply.ts";

interface MkdirArgs {
  readonly where: DirOpArgs;
  readonly attrs: CreateAttrs;
}

/** MKDIR (RFC 1813 3.3.9). */
export const mkdir: NfsProcedure<MkdirArgs> = {
  name: "MKDIR",
  mutating: true,
  metadataChange: true,
  decode: (r) => ({ where: readDirOpArgs(r), attrs: readSattr(r) }),
  async run(req, args, w) {
    writeCreated(
      req,
      w,
      await req.volume.mkdir(req.cred, req.resolve(args.where.dir), args.where.name, args.attrs),
    );
    return undefined;
  },
  failure: (req, args, w) => writeCreateFailure(req, args.where.dir, w),
};
