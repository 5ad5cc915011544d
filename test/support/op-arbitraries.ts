/**
 * fast-check arbitraries for op sequences. Names come from a tiny alphabet so that operations collide
 * (EXIST, NOTEMPTY, replacing renames, hard links to the same name) as often as they succeed.
 *
 * A non-root setattr changes one attribute at a time: the contract orders the checks within one
 * setattr, but which of several refused attributes is reported is left to that order.
 */
import fc from "fast-check";
import type { Op, Pick, Who } from "./fs-ops.ts";

export interface OpProfile {
  /** Largest ordinary write/read offset; far sparse offsets come on top when `farOffsets`. */
  readonly offsetMax: number;
  readonly lengthMax: number;
  /** Include offsets up to 2^40 and at the 2^43 bound. */
  readonly farOffsets: boolean;
  readonly remount: boolean;
  readonly check: boolean;
  /** The most files one `populate` op makes. */
  readonly populateMax: number;
}

export const PROPERTY_PROFILE: OpProfile = {
  offsetMax: 300_000,
  lengthMax: 64 * 1024,
  farOffsets: true,
  remount: true,
  check: true,
  populateMax: 300,
};

const NAMES = ["a", "b", "c", "d", "e"] as const;
const INTERESTING_MODES = [
  0o755, 0o700, 0o777, 0o1777, 0o2775, 0o2777, 0o644, 0o600, 0o000, 0o4755, 0o2755, 0o1755, 0o444, 0o666,
  0o770, 0o711, 0o17777,
];

const who: fc.Arbitrary<Who> = fc.oneof(
  { weight: 6, arbitrary: fc.constant<Who>(0) },
  { weight: 1, arbitrary: fc.constant<Who>(1) },
  { weight: 1, arbitrary: fc.constant<Who>(2) },
);
/** Mostly the tiny alphabet; now and then a name that `populate` made. */
const name = fc.oneof(
  { weight: 12, arbitrary: fc.constantFrom(...NAMES) },
  { weight: 1, arbitrary: fc.nat(12).map((i) => `p${i}`) },
);
const anyName = fc.oneof(
  { weight: 30, arbitrary: name },
  { weight: 1, arbitrary: fc.constantFrom(".", "..") },
);
const index = fc.nat(63);

function pick(pool: Pick["pool"]): fc.Arbitrary<Pick> {
  return fc.oneof(
    { weight: 12, arbitrary: index.map((i): Pick => ({ pool, index: i })) },
    { weight: 1, arbitrary: index.map((i): Pick => ({ pool: "any", index: i })) },
  );
}

const dirPick = pick("dir");
const filePick = pick("reg");
const anyPick = fc.oneof(
  { weight: 3, arbitrary: index.map((i): Pick => ({ pool: "any", index: i })) },
  { weight: 1, arbitrary: index.map((i): Pick => ({ pool: "dir", index: i })) },
);
const mode = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...INTERESTING_MODES) },
  { weight: 1, arbitrary: fc.nat(0o7777) },
);
const ownerId = fc.constantFrom(0, 100, 1000, 1001);

function offset(profile: OpProfile): fc.Arbitrary<number> {
  const near = [
    { weight: 5, arbitrary: fc.nat(profile.offsetMax) },
    { weight: 2, arbitrary: fc.nat(Math.floor(profile.offsetMax / 4096)).map((b) => b * 4096) },
  ];
  if (!profile.farOffsets) return fc.oneof(...near);
  return fc.oneof(
    ...near,
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 2 ** 40 }) },
    { weight: 1, arbitrary: fc.constantFrom(2 ** 43 - 5, 2 ** 43, -1) },
  );
}

function length(profile: OpProfile): fc.Arbitrary<number> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.nat(100) },
    { weight: 3, arbitrary: fc.nat(Math.min(9000, profile.lengthMax)) },
    { weight: 2, arbitrary: fc.nat(profile.lengthMax) },
  );
}

function size(profile: OpProfile): fc.Arbitrary<number> {
  const near = fc.nat(profile.offsetMax);
  if (!profile.farOffsets) return fc.oneof(near, fc.constant(0));
  return fc.oneof(
    { weight: 6, arbitrary: near },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 2 ** 40 }) },
    { weight: 1, arbitrary: fc.constantFrom(0, 2 ** 43, 2 ** 43 + 1) },
  );
}

const SETATTR_FIELDS = ["mode", "uid", "gid", "size", "time"] as const;

function setattrOp(profile: OpProfile): fc.Arbitrary<Op> {
  return fc
    .record({
      who,
      obj: anyPick,
      fileObj: filePick,
      fields: fc.subarray([...SETATTR_FIELDS], { minLength: 1, maxLength: 3 }),
      mode,
      uid: ownerId,
      gid: ownerId,
      size: size(profile),
      time: fc.constantFrom<"server" | "explicit">("server", "explicit"),
      guard: fc.constantFrom<"none" | "current" | "stale">(
        "none",
        "none",
        "none",
        "none",
        "current",
        "stale",
      ),
    })
    .map((op): Op => {
      // Non-root: one attribute at a time (which of several permission checks decides is then clear).
      const fields = op.who === 0 ? op.fields : op.fields.slice(0, 1);
      const has = (field: (typeof SETATTR_FIELDS)[number]) => fields.includes(field);
      return {
        kind: "setattr",
        who: op.who,
        // Size changes mostly go to regular files.
        obj: has("size") ? op.fileObj : op.obj,
        guard: op.guard,
        ...(has("mode") ? { mode: op.mode } : {}),
        ...(has("uid") ? { uid: op.uid } : {}),
        ...(has("gid") ? { gid: op.gid } : {}),
        ...(has("size") ? { size: op.size } : {}),
        ...(has("time") ? { time: op.time } : {}),
      };
    });
}

export function opArbitrary(profile: OpProfile): fc.Arbitrary<Op> {
  const symlinkTarget = fc.constantFrom(
    "a",
    "../b",
    "/x/y",
    "c/d/e",
    "é",
    "t".repeat(1024),
    "",
    "t".repeat(1025),
  );
  const arbitraries: Array<{ weight: number; arbitrary: fc.Arbitrary<Op> }> = [
    {
      weight: 10,
      arbitrary: fc
        .record({
          who,
          dir: dirPick,
          name: anyName,
          how: fc.constantFrom<"unchecked" | "guarded" | "exclusive">("unchecked", "guarded", "exclusive"),
          mode: fc.option(mode, { nil: undefined }),
          size: fc.option(fc.nat(profile.offsetMax), { nil: undefined, freq: 4 }),
          verifier: fc.nat(2),
        })
        .map((op): Op => {
          const { mode: m, size: s, ...rest } = op;
          return {
            kind: "create",
            ...rest,
            ...(m === undefined ? {} : { mode: m }),
            ...(s === undefined ? {} : { size: s }),
          };
        }),
    },
    {
      weight: 6,
      arbitrary: fc
        .record({ who, dir: dirPick, name: anyName, mode: fc.option(mode, { nil: undefined }) })
        .map(
          ({ mode: m, ...rest }): Op => ({ kind: "mkdir", ...rest, ...(m === undefined ? {} : { mode: m }) }),
        ),
    },
    {
      weight: 2,
      arbitrary: fc
        .record({ who, dir: dirPick, name: anyName, target: symlinkTarget })
        .map((op): Op => ({ kind: "symlink", ...op })),
    },
    {
      weight: 2,
      arbitrary: fc
        .record({
          who,
          dir: dirPick,
          name: anyName,
          type: fc.constantFrom<"chr" | "blk" | "sock" | "fifo">("chr", "blk", "sock", "fifo"),
          major: fc.nat(255),
          minor: fc.nat(255),
        })
        .map((op): Op => ({ kind: "mknod", ...op })),
    },
    {
      weight: 12,
      arbitrary: fc
        .record({
          who,
          file: filePick,
          offset: offset(profile),
          length: length(profile),
          seed: fc.nat(),
          stability: fc.constantFrom<"unstable" | "data-sync" | "file-sync">(
            "unstable",
            "unstable",
            "data-sync",
            "file-sync",
          ),
        })
        .map((op): Op => ({ kind: "write", ...op })),
    },
    {
      weight: 5,
      arbitrary: fc
        .record({
          who,
          file: filePick,
          offset: offset(profile),
          count: fc.oneof(
            { weight: 9, arbitrary: fc.nat(70_000) },
            { weight: 1, arbitrary: fc.constant(5 * 2 ** 20) },
          ),
        })
        .map((op): Op => ({ kind: "read", ...op })),
    },
    { weight: 6, arbitrary: setattrOp(profile) },
    {
      weight: 4,
      arbitrary: fc.record({ who, dir: dirPick, name: anyName }).map((op): Op => ({ kind: "remove", ...op })),
    },
    {
      weight: 5,
      arbitrary: fc.record({ who, dir: dirPick, name: anyName }).map((op): Op => ({ kind: "rmdir", ...op })),
    },
    {
      weight: 7,
      arbitrary: fc
        .record({ who, fromDir: dirPick, fromName: anyName, toDir: dirPick, toName: anyName })
        .map((op): Op => ({ kind: "rename", ...op })),
    },
    {
      weight: 3,
      arbitrary: fc
        .record({ who, file: filePick, dir: dirPick, name: anyName })
        .map((op): Op => ({ kind: "link", ...op })),
    },
    {
      weight: 3,
      arbitrary: fc
        .record({ who, dir: dirPick, maxEntries: fc.integer({ min: 1, max: 4 }) })
        .map((op): Op => ({ kind: "readdir", ...op })),
    },
    {
      weight: 2,
      arbitrary: fc
        .record({ who, dir: dirPick, maxEntries: fc.integer({ min: 1, max: 3 }) })
        .map((op): Op => ({ kind: "readdirStart", ...op })),
    },
    {
      weight: 2,
      arbitrary: fc
        .record({ who, maxEntries: fc.integer({ min: 1, max: 3 }), zeroVerifier: fc.boolean() })
        .map((op): Op => ({ kind: "readdirResume", ...op })),
    },
    {
      weight: 5,
      arbitrary: fc
        .record({
          who,
          dir: dirPick,
          name: fc.oneof({ weight: 4, arbitrary: name }, fc.constantFrom(".", "..")),
        })
        .map((op): Op => ({ kind: "lookup", ...op })),
    },
    { weight: 2, arbitrary: fc.record({ obj: anyPick }).map((op): Op => ({ kind: "getattr", ...op })) },
    {
      weight: 1,
      arbitrary: fc.record({ who, obj: pick("lnk") }).map((op): Op => ({ kind: "readlink", ...op })),
    },
    { weight: 2, arbitrary: fc.constant<Op>({ kind: "commit" }) },
    {
      weight: 1,
      arbitrary: fc
        .record({ dir: dirPick, count: fc.integer({ min: 1, max: profile.populateMax }), seed: fc.nat() })
        .map((op): Op => ({ kind: "populate", ...op })),
    },
  ];
  if (profile.remount) arbitraries.push({ weight: 1, arbitrary: fc.constant<Op>({ kind: "remount" }) });
  if (profile.check) arbitraries.push({ weight: 1, arbitrary: fc.constant<Op>({ kind: "check" }) });
  return fc.oneof(...arbitraries);
}
