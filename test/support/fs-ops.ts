/**
 * File-system operations as plain data, so property and crash tests can generate, print, shrink and
 * replay them. Objects are chosen by position in the runner's list of known objects (`Pick`), which
 * both sides share, so one op means the same thing to the model and to the real volume.
 */
import type { Credentials, SpecialType, Stability } from "../../src/fs/index.ts";

export const ROOT: Credentials = { uid: 0, gid: 0, gids: [] };
export const ALICE: Credentials = { uid: 1000, gid: 1000, gids: [100] };
/** Bob is also in Alice's group, so group permissions matter. */
export const BOB: Credentials = { uid: 1001, gid: 1001, gids: [100, 1000] };
export const USERS = [ROOT, ALICE, BOB] as const;
export type Who = 0 | 1 | 2;

/** Which known object: the `index`-th (modulo) of those of the pool's type; deleted ones included. */
export interface Pick {
  readonly pool: "dir" | "reg" | "lnk" | "any";
  readonly index: number;
}

export type CreateKind = "unchecked" | "guarded" | "exclusive";

export type Op =
  | {
      readonly kind: "create";
      readonly who: Who;
      readonly dir: Pick;
      readonly name: string;
      readonly how: CreateKind;
      readonly mode?: number;
      readonly size?: number;
      /** Exclusive creates: which of a few verifiers. */
      readonly verifier: number;
    }
  | {
      readonly kind: "mkdir";
      readonly who: Who;
      readonly dir: Pick;
      readonly name: string;
      readonly mode?: number;
    }
  | {
      readonly kind: "symlink";
      readonly who: Who;
      readonly dir: Pick;
      readonly name: string;
      readonly target: string;
    }
  | {
      readonly kind: "mknod";
      readonly who: Who;
      readonly dir: Pick;
      readonly name: string;
      readonly type: SpecialType;
      readonly major: number;
      readonly minor: number;
    }
  | {
      readonly kind: "write";
      readonly who: Who;
      readonly file: Pick;
      readonly offset: number;
      readonly length: number;
      /** The bytes written are `patternBytes(seed, length)`. */
      readonly seed: number;
      readonly stability: Stability;
    }
  | {
      readonly kind: "read";
      readonly who: Who;
      readonly file: Pick;
      readonly offset: number;
      readonly count: number;
    }
  | {
      readonly kind: "setattr";
      readonly who: Who;
      readonly obj: Pick;
      readonly mode?: number;
      readonly uid?: number;
      readonly gid?: number;
      readonly size?: number;
      readonly time?: "server" | "explicit";
      /** "current": guard with the object's ctime as each side reports it; "stale": a ctime it never had. */
      readonly guard: "none" | "current" | "stale";
    }
  | { readonly kind: "remove"; readonly who: Who; readonly dir: Pick; readonly name: string }
  | { readonly kind: "rmdir"; readonly who: Who; readonly dir: Pick; readonly name: string }
  | {
      readonly kind: "rename";
      readonly who: Who;
      readonly fromDir: Pick;
      readonly fromName: string;
      readonly toDir: Pick;
      readonly toName: string;
    }
  | {
      readonly kind: "link";
      readonly who: Who;
      readonly file: Pick;
      readonly dir: Pick;
      readonly name: string;
    }
  /** Lists a whole directory, `maxEntries` at a time. */
  | { readonly kind: "readdir"; readonly who: Who; readonly dir: Pick; readonly maxEntries: number }
  /** Reads the first page of a directory and keeps the cursor for a later `readdirResume`. */
  | { readonly kind: "readdirStart"; readonly who: Who; readonly dir: Pick; readonly maxEntries: number }
  /** `zeroVerifier`: resume without a verifier (the client keeps none), which is always accepted. */
  | {
      readonly kind: "readdirResume";
      readonly who: Who;
      readonly maxEntries: number;
      readonly zeroVerifier: boolean;
    }
  | { readonly kind: "lookup"; readonly who: Who; readonly dir: Pick; readonly name: string }
  | { readonly kind: "getattr"; readonly obj: Pick }
  | { readonly kind: "readlink"; readonly who: Who; readonly obj: Pick }
  /** Root makes `count` files p0, p1, ... in a directory, each with a little data: grows the trees. */
  | { readonly kind: "populate"; readonly dir: Pick; readonly count: number; readonly seed: number }
  | { readonly kind: "commit" }
  | { readonly kind: "remount" }
  /** Compares the whole tree of both sides. */
  | { readonly kind: "check" };

/** Deterministic bytes for a write: the same seed and length always give the same data. */
export function patternBytes(seed: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let state = (seed ^ 0x5bd1e995) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    out[i] = state & 0xff;
  }
  return out;
}

/** An 8-byte exclusive-create verifier for a small number. */
export function verifierBytes(verifier: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setUint32(4, verifier + 1);
  return out;
}

const STABILITY_RANK: Record<Stability, number> = { unstable: 0, "data-sync": 1, "file-sync": 2 };

export function stabilityAtLeast(reached: Stability, asked: Stability): boolean {
  return STABILITY_RANK[reached] >= STABILITY_RANK[asked];
}

/** A short, readable rendering of an op for failure messages. */
export function describeOp(op: Op): string {
  return JSON.stringify(op);
}
