/** A failed assertion is a bug in Flotilla, never an expected condition: it crashes loudly. */
export class AssertionFailure extends Error {
  override name = "AssertionFailure";
}

export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionFailure(message);
}

export function unreachable(value: never, message = "unreachable"): never {
  throw new AssertionFailure(`${message}: ${String(value)}`);
}

/**
 * For hot paths: `if (!cond) assertionFailed(`...${x}`)` builds its message only when it fails,
 * where `assert(cond, `...${x}`)` formats it on every call (about 20 ns, many times per NFS reply).
 */
export function assertionFailed(message: string): never {
  throw new AssertionFailure(message);
}
