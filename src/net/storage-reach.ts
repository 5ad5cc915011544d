/**
 * Which storage servers this node reaches: a TCP connect to each registered server's address on a
 * timer. A server counts as unreached only after a few failed probes in a row, so one lost SYN does
 * not move a vserver.
 */
import { connect } from "node:net";

export interface ProbeTarget {
  readonly serverId: string;
  readonly host: string;
  readonly port: number;
}

export type Prober = (target: ProbeTarget, timeoutMs: number) => Promise<boolean>;

export const tcpProber: Prober = (target, timeoutMs) =>
  new Promise((resolve) => {
    const socket = connect({ host: target.host, port: target.port });
    let settled = false;
    const done = (ok: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    // A timer and a finished connect can both be due after the event loop was busy for a while;
    // timers run first, so the verdict waits one turn for the connect's callback to have its say.
    const timer = setTimeout(() => setImmediate(() => done(false)), timeoutMs);
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });

export const PROBE_TIMEOUT_MS = 1000;
/** Failed probes in a row before a server counts as unreached. */
export const PROBE_FAILURES_MAX = 3;

export class StorageReach {
  private readonly failures = new Map<string, number>();
  private readonly probe: Prober;
  private running = false;

  constructor(probe: Prober = tcpProber) {
    this.probe = probe;
  }

  /** Probes every target once (a probe still running is not doubled) and forgets servers that left. */
  async probeAll(targets: readonly ProbeTarget[]): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      const results = await Promise.all(targets.map((t) => this.probe(t, PROBE_TIMEOUT_MS)));
      const seen = new Set<string>();
      targets.forEach((target, i) => {
        seen.add(target.serverId);
        this.failures.set(
          target.serverId,
          results[i] === true ? 0 : (this.failures.get(target.serverId) ?? 0) + 1,
        );
      });
      for (const id of [...this.failures.keys()]) if (!seen.has(id)) this.failures.delete(id);
    } finally {
      this.running = false;
    }
  }

  /** Registered servers this node reaches: never probed yet counts as reached (no news yet). */
  reached(serverIds: readonly string[]): string[] {
    return serverIds.filter((id) => (this.failures.get(id) ?? 0) < PROBE_FAILURES_MAX);
  }
}
