import { type RpcClient, type RpcHandler, type RpcProgram, resultsOf } from "../../../src/rpc/index.ts";
import { XdrWriter } from "../../../src/xdr/index.ts";

/** A program of our own for exercising the RPC layer; versions 1 and 3 are held, 2 is not. */
export const TOY_PROGRAM = 0x2000_0001;
export const TOY_VERSIONS = [1, 3] as const;
export const ToyProcedure = {
  NULL: 0,
  /** Returns its opaque argument. */
  ECHO: 1,
  /** Waits at the gate, then returns its u32 argument. */
  GATED: 2,
  /** Throws a plain Error: SYSTEM_ERR. */
  THROW: 3,
  /** Answers nothing at all. */
  DROP: 4,
  /** Returns the caller's credential, address and connection id. */
  WHOAMI: 5,
  /** Refuses the caller with AUTH_ERROR(TOOWEAK). */
  REFUSE: 6,
} as const;

/** Blocks GATED calls until opened; counts them as they run, to check the in-flight bound. */
export class ToyState {
  active = 0;
  activeMax = 0;
  started = 0;
  private open = false;
  private waiters: (() => void)[] = [];
  private watchers: (() => void)[] = [];

  /** Lets every waiting and future GATED call through. */
  openGate(): void {
    this.open = true;
    for (const release of this.waiters.splice(0)) release();
  }

  /** Lets the `count` oldest waiting GATED calls through. */
  release(count = 1): void {
    for (const release of this.waiters.splice(0, count)) release();
  }

  get waiting(): number {
    return this.waiters.length;
  }

  /** Resolves once `predicate` holds, checking whenever a GATED call starts or ends: no polling. */
  async until(predicate: (state: ToyState) => boolean): Promise<void> {
    while (!predicate(this)) await new Promise<void>((resolve) => this.watchers.push(resolve));
  }

  async gated(): Promise<void> {
    this.started++;
    this.active++;
    this.activeMax = Math.max(this.activeMax, this.active);
    this.changed();
    try {
      if (!this.open) await new Promise<void>((resolve) => this.waiters.push(resolve));
    } finally {
      this.active--;
      this.changed();
    }
  }

  private changed(): void {
    for (const watcher of this.watchers.splice(0)) watcher();
  }
}

function ok(writer: XdrWriter) {
  return { kind: "success", body: [writer.bytes()] } as const;
}

export function toyPrograms(state: ToyState): RpcProgram[] {
  const handlers = new Map<number, RpcHandler>([
    [ToyProcedure.NULL, async () => ({ kind: "success", body: [] })],
    [ToyProcedure.ECHO, async (call) => ok(new XdrWriter().opaque(call.args.opaque(2 * 1024 * 1024)))],
    [
      ToyProcedure.GATED,
      async (call) => {
        const value = call.args.u32();
        await state.gated();
        return ok(new XdrWriter().u32(value));
      },
    ],
    [
      ToyProcedure.THROW,
      async () => {
        throw new Error("toy failure");
      },
    ],
    [ToyProcedure.DROP, async () => ({ kind: "drop" })],
    [
      ToyProcedure.WHOAMI,
      async (call) => {
        const writer = new XdrWriter().string(call.credential.flavor);
        if (call.credential.flavor === "sys") {
          const sys = call.credential.sys;
          writer.string(sys.machineName).u32(sys.uid).u32(sys.gid).u32(sys.gids.length);
          for (const gid of sys.gids) writer.u32(gid);
        }
        return ok(writer.string(call.client.address).u32(call.connectionId));
      },
    ],
    [ToyProcedure.REFUSE, async () => ({ kind: "auth-error", stat: 5 })],
  ]);
  return TOY_VERSIONS.map((version) => ({
    program: TOY_PROGRAM,
    version,
    name: "toy",
    handler: (procedure) => handlers.get(procedure),
  }));
}

export function echoArgs(payload: Uint8Array): Uint8Array {
  return new XdrWriter(payload.length + 8).opaque(payload).bytes();
}

/** ECHO through `client`, returning the echoed bytes (throws unless SUCCESS). */
export async function echo(client: RpcClient, payload: Uint8Array): Promise<Uint8Array> {
  const reply = await client.call(TOY_PROGRAM, 3, ToyProcedure.ECHO, echoArgs(payload));
  return resultsOf(reply).opaque(2 * 1024 * 1024);
}

export function u32Args(value: number): Uint8Array {
  return new XdrWriter(4).u32(value).bytes();
}
