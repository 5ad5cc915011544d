import type { NfsProcedure } from "../procedure.ts";

/** NULL: does nothing, answers at once (clients ping with it). */
export const nullProc: NfsProcedure<undefined> = {
  name: "NULL",
  mutating: false,
  metadataChange: false,
  decode: () => undefined,
  run: async () => undefined,
  failure: async () => undefined,
};
