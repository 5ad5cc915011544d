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
