import { z } from "zod";
import type {
  CreateAttrs,
  CreateHow,
  Credentials,
  DeviceNumbers,
  NodeRef,
  SetAttrRequest,
  SpecialType,
  Timespec,
} from "./types.ts";

/**
 * One namespace or attribute change, as the intent log keeps it: the call and what made it
 * deterministic (the clock's reading, the next inode number), so that replaying it on the
 * transaction group it followed makes the same change, handles included.
 */
export type IntentOp =
  | {
      readonly op: "setattr";
      readonly at: OpContext;
      readonly ref: NodeRef;
      readonly request: SetAttrRequest;
    }
  | {
      readonly op: "create";
      readonly at: OpContext;
      readonly dir: NodeRef;
      readonly name: string;
      readonly how: CreateHow;
    }
  | {
      readonly op: "mkdir";
      readonly at: OpContext;
      readonly dir: NodeRef;
      readonly name: string;
      readonly attrs: CreateAttrs;
    }
  | {
      readonly op: "symlink";
      readonly at: OpContext;
      readonly dir: NodeRef;
      readonly name: string;
      readonly target: string;
      readonly attrs: CreateAttrs;
    }
  | {
      readonly op: "mknod";
      readonly at: OpContext;
      readonly dir: NodeRef;
      readonly name: string;
      readonly type: SpecialType;
      readonly attrs: CreateAttrs;
      readonly rdev?: DeviceNumbers;
    }
  | { readonly op: "remove" | "rmdir"; readonly at: OpContext; readonly dir: NodeRef; readonly name: string }
  | {
      readonly op: "rename";
      readonly at: OpContext;
      readonly from: NodeRef;
      readonly fromName: string;
      readonly to: NodeRef;
      readonly toName: string;
    }
  | {
      readonly op: "link";
      readonly at: OpContext;
      readonly target: NodeRef;
      readonly dir: NodeRef;
      readonly name: string;
    };

/** What an operation saw of the world when it ran. */
export interface OpContext {
  readonly cred: Credentials;
  readonly now: Timespec;
  /** The store's next inode number before the operation. */
  readonly nextIno: number;
}

const u32 = z.number().int().min(0).max(0xffff_ffff);
const safe = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const timespec = z.object({ sec: z.number().int(), nsec: u32 });
const timeSetting = z.union([z.literal("server"), timespec]);
const ref = z.object({ ino: safe, gen: u32 });
const attrs = z.object({
  mode: u32.optional(),
  uid: u32.optional(),
  gid: u32.optional(),
  size: safe.optional(),
  atime: timeSetting.optional(),
  mtime: timeSetting.optional(),
});
const at = z.object({
  cred: z.object({ uid: u32, gid: u32, gids: z.array(u32).max(64) }),
  now: timespec,
  nextIno: safe,
});
const name = z.string().max(1024);
const verifier = z
  .string()
  .regex(/^[0-9a-f]{16}$/)
  .transform((hex) => Uint8Array.from(Buffer.from(hex, "hex")));

/** The log's JSON form: as IntentOp, but an exclusive create's verifier is hex. */
const intentOpSchema = z.discriminatedUnion("op", [
  z.object({ op: z.literal("setattr"), at, ref, request: attrs }),
  z.object({
    op: z.literal("create"),
    at,
    dir: ref,
    name,
    how: z.discriminatedUnion("kind", [
      z.object({ kind: z.literal("unchecked"), attrs }),
      z.object({ kind: z.literal("guarded"), attrs }),
      z.object({ kind: z.literal("exclusive"), verifier }),
    ]),
  }),
  z.object({ op: z.literal("mkdir"), at, dir: ref, name, attrs }),
  z.object({ op: z.literal("symlink"), at, dir: ref, name, target: z.string().max(4096), attrs }),
  z.object({
    op: z.literal("mknod"),
    at,
    dir: ref,
    name,
    type: z.enum(["chr", "blk", "sock", "fifo"]),
    attrs,
    rdev: z.object({ major: u32, minor: u32 }).optional(),
  }),
  z.object({ op: z.literal("remove"), at, dir: ref, name }),
  z.object({ op: z.literal("rmdir"), at, dir: ref, name }),
  z.object({ op: z.literal("rename"), at, from: ref, fromName: name, to: ref, toName: name }),
  z.object({ op: z.literal("link"), at, target: ref, dir: ref, name }),
]);

/** JSON text of an operation for the log. */
export function encodeIntentOp(op: IntentOp): string {
  return JSON.stringify(op, (_key, value: unknown) =>
    value instanceof Uint8Array ? Buffer.from(value).toString("hex") : value,
  );
}

/** Parses operations read back from the log; a string says why they are not valid. */
export function decodeIntentOps(json: string): IntentOp[] | string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch (error) {
    return `not JSON: ${String(error)}`;
  }
  const result = z.array(intentOpSchema).safeParse(parsed);
  return result.success ? result.data : `not a list of operations: ${result.error.message}`;
}
