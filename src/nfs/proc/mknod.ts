import { type CreateAttrs, type DeviceNumbers, FsError, type SpecialType } from "../../fs/index.ts";
import { Ftype3 } from "../nfs3.ts";
import type { NfsProcedure } from "../procedure.ts";
import { type DirOpArgs, readDirOpArgs, readSattr } from "../xdr3.ts";
import { writeCreated, writeCreateFailure } from "./create-reply.ts";

interface MknodArgs {
  readonly where: DirOpArgs;
  /** undefined for types MKNOD cannot make (regular files, directories, links): BADTYPE. */
  readonly type: SpecialType | undefined;
  readonly attrs: CreateAttrs;
  readonly rdev: DeviceNumbers | undefined;
}

const SPECIAL: Record<number, SpecialType> = {
  [Ftype3.CHR]: "chr",
  [Ftype3.BLK]: "blk",
  [Ftype3.SOCK]: "sock",
  [Ftype3.FIFO]: "fifo",
};

/** MKNOD (RFC 1813 3.3.11): device nodes, sockets and fifos. */
export const mknod: NfsProcedure<MknodArgs> = {
  name: "MKNOD",
  mutating: true,
  metadataChange: true,
  decode(r) {
    const where = readDirOpArgs(r);
    const code = r.enumOf(Object.values(Ftype3), "ftype3");
    const type = SPECIAL[code];
    if (type === "chr" || type === "blk") {
      const attrs = readSattr(r);
      return { where, type, attrs, rdev: { major: r.u32(), minor: r.u32() } };
    }
    if (type === "sock" || type === "fifo") return { where, type, attrs: readSattr(r), rdev: undefined };
    return { where, type: undefined, attrs: {}, rdev: undefined };
  },
  async run(req, args, w) {
    const dir = req.resolve(args.where.dir);
    if (args.type === undefined) throw new FsError("BADTYPE", "MKNOD makes only devices, sockets and fifos");
    writeCreated(
      req,
      w,
      await req.volume.mknod(req.cred, dir, args.where.name, args.type, args.attrs, args.rdev),
    );
    return undefined;
  },
  failure: (req, args, w) => writeCreateFailure(req, args.where.dir, w),
};
