/** Input that is not valid XDR for what was expected: truncated, over a bound, or malformed. */
export class XdrError extends Error {
  override name = "XdrError";
}
