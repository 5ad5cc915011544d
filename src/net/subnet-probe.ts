/**
 * Whether a port with link still reaches its subnet: an ARP request out of that very port to a target
 * on the subnet (the other nodes' ports there, and any address the operator names, such as a
 * gateway). Link state says the cable is in; only an answer says the switch passes the port. ARP and
 * not TCP, because a TCP probe leaves by whichever port the kernel's route picks, and on a node with
 * two ports on one subnet that is not always the port asked about.
 *
 * Each round probes one target per port, in turn, all ports in one run of a small C program
 * (native/arp-probe.c; a run of arping per probe costs some 25 ms of CPU each), so the cost is one
 * probe per port a round however many peers there are. A port counts as cut off when every target's latest probe went unanswered and
 * at least FAILED_ROUNDS_MIN rounds in a row failed: one target down (a peer node cut off itself) does
 * not cut off the rest. One answer is enough to count it back.
 */
import { execFile } from "node:child_process";
import { nativeProgram } from "./native-build.ts";

export interface ArpQuestion {
  readonly port: string;
  /** The port's own address, the request's sender; null: none known (the probe is not sent). */
  readonly source: string | null;
  readonly target: string;
}

/** Whether each question's target answers ARP on its port within `timeoutMs`, in order. */
export type ArpProber = (questions: readonly ArpQuestion[], timeoutMs: number) => Promise<boolean[]>;

export const SUBNET_PROBE_TIMEOUT_MS = 500;
/** Failed rounds in a row (with every target's latest probe failed) before a port counts as cut off. */
export const FAILED_ROUNDS_MIN = 2;
/** Targets per port: its peers and the operator's probes, bounded. */
export const PROBE_TARGETS_MAX = 16;
/** Probes in one run of the program (its own bound). */
const QUESTIONS_PER_RUN_MAX = 64;

/** native/arp-probe.c, built on first use. */
export function arpProbeProgram(cacheDir?: string): Promise<string> {
  return nativeProgram("arp-probe", "probing whether a port still reaches its subnet", cacheDir);
}

/** Parses arp-probe's lines ("PORT TARGET 1|0 [why]") into answers for `questions`, in order. */
export function parseArpProbeReport(questions: readonly ArpQuestion[], out: string): boolean[] {
  const answered = new Set<string>();
  for (const line of out.split("\n")) {
    const [port, target, verdict] = line.trim().split(/\s+/);
    if (verdict === "1") answered.add(`${port} ${target}`);
  }
  return questions.map((q) => answered.has(`${q.port} ${q.target}`));
}

/** One run of arp-probe for all questions (a question without a source counts as unanswered). */
export function nativeArpProber(program: () => Promise<string> = () => arpProbeProgram()): ArpProber {
  return async (questions, timeoutMs) => {
    const asked = questions.filter((q) => q.source !== null).slice(0, QUESTIONS_PER_RUN_MAX);
    if (asked.length === 0) return questions.map(() => false);
    const path = await program();
    const args = [String(timeoutMs), ...asked.flatMap((q) => [q.port, q.source as string, q.target])];
    const out = await new Promise<string>((resolve) =>
      // Exit 1 (a port it could not use) still reports the rest.
      execFile(path, args, { timeout: timeoutMs + 2000, maxBuffer: 64 * 1024 }, (_error, stdout) =>
        resolve(stdout),
      ),
    );
    return parseArpProbeReport(questions, out).map((ok, i) => ok && questions[i]?.source !== null);
  };
}

export interface ProbedPort {
  readonly name: string;
  readonly linkUp: boolean;
  readonly address: string | null;
  /** Where to probe: other nodes' addresses on its subnet and the operator's probe addresses. */
  readonly targets: readonly string[];
}

interface PortProbeState {
  turn: number;
  failedRounds: number;
  targets: readonly string[];
  readonly latest: Map<string, boolean>;
}

export class SubnetProbe {
  private readonly probe: ArpProber;
  private readonly timeoutMs: number;
  private readonly state = new Map<string, PortProbeState>();
  private running = false;

  constructor(probe: ArpProber = nativeArpProber(), timeoutMs = SUBNET_PROBE_TIMEOUT_MS) {
    this.probe = probe;
    this.timeoutMs = timeoutMs;
  }

  /** One round: the next target of each port with link (a round still running is not doubled). */
  async round(ports: readonly ProbedPort[]): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      const seen = new Set(ports.map((p) => p.name));
      for (const name of [...this.state.keys()]) if (!seen.has(name)) this.state.delete(name);
      const questions: (ArpQuestion & { state: PortProbeState })[] = [];
      for (const port of ports) {
        const question = this.nextQuestion(port);
        if (question !== undefined) questions.push(question);
      }
      if (questions.length === 0) return;
      const answers = await this.probe(questions, this.timeoutMs);
      questions.forEach((q, i) => {
        const answered = answers[i] === true;
        q.state.latest.set(q.target, answered);
        q.state.failedRounds = answered ? 0 : q.state.failedRounds + 1;
      });
    } finally {
      this.running = false;
    }
  }

  /** The port's next target in turn, or undefined for a port probes say nothing about. */
  private nextQuestion(port: ProbedPort): (ArpQuestion & { state: PortProbeState }) | undefined {
    const targets = [...new Set(port.targets)].slice(0, PROBE_TARGETS_MAX);
    if (!port.linkUp || targets.length === 0) {
      // No link is the link monitor's to report; no target leaves link state the only word.
      this.state.delete(port.name);
      return undefined;
    }
    const state = this.state.get(port.name) ?? { turn: 0, failedRounds: 0, targets, latest: new Map() };
    state.targets = targets;
    this.state.set(port.name, state);
    for (const target of [...state.latest.keys()]) if (!targets.includes(target)) state.latest.delete(target);
    const target = targets[state.turn % targets.length] as string;
    state.turn = (state.turn + 1) % targets.length;
    return { port: port.name, source: port.address, target, state };
  }

  /** Whether `port` has link but reaches none of its targets. */
  cut(port: string): boolean {
    const state = this.state.get(port);
    if (state === undefined || state.failedRounds < FAILED_ROUNDS_MIN) return false;
    return state.targets.every((target) => state.latest.get(target) === false);
  }
}
