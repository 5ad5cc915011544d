/**
 * How a node makes a VIP answer. Both drivers implement one interface; the loopback driver (the
 * default, for `npm start`: VIPs in 127.0.0.0/8, which the kernel already answers, so holding one is
 * listening on it) and the Linux driver (an address on a real interface, announced by gratuitous ARP
 * so switches and clients learn the new owner's MAC at once instead of when their caches age out).
 */
import { execFile } from "node:child_process";
import { parseIpv4 } from "./cidr.ts";
import type { SubnetRoute } from "./model.ts";
import {
  type Argv,
  isAlreadyDone,
  ownerDownArgvs,
  ownerUpArgvs,
  portArpArgv,
  ROUTE_TABLES_MAX,
  routerDownArgvs,
  routerUpArgvs,
  vipPortDownArgvs,
  vipPortUpArgvs,
} from "./route-commands.ts";
import {
  establishedArgv,
  parseEstablished,
  type TcpConnection,
  type TrackedConnections,
} from "./tcp-connections.ts";
import { parseTickleReport, tickleArgvs, tickleProgram } from "./tickle.ts";

export interface VipDriver {
  readonly kind: "loopback" | "linux";
  /**
   * Makes `vip` answer on `port` of this node (the Linux driver needs a port). Idempotent. It is
   * announced there unless `announce` is false (the caller announces it later, see NodeNetwork.hold).
   * Given the port's `subnet`, the VIP's replies to it leave by that port too.
   */
  hold(vip: string, port: string | null, options?: HoldOptions): Promise<void>;
  /** Readies the node's client ports for VIPs: each answers only for what is on it. Idempotent. */
  preparePorts(ports: readonly string[]): Promise<void>;
  /** Stops answering on `vip`. Idempotent. */
  release(vip: string): Promise<void>;
  /**
   * The established TCP connections on `vip` here (a bounded number). The holder publishes them, as
   * after a crash they cannot be read from it, for the VIP's next holder to `tickle`.
   */
  connections(vip: string): Promise<TrackedConnections>;
  /** Makes the clients of `connections` (once on `vip`, held here now) drop them and reconnect at once. */
  tickle(vip: string, connections: readonly TcpConnection[]): Promise<void>;
  /** Tells the segment of `port` again that `vip` is here (after a router answered for it). */
  announce(vip: string, port: string): Promise<void>;
  /** The router's side of a route (see route-commands.ts): answers for its VIP and forwards. Idempotent. */
  forwardFor(route: SubnetRoute): Promise<void>;
  stopForwardingFor(route: SubnetRoute): Promise<void>;
  /** The owner's side of a route: its VIP's replies to the subnet leave by the router. Idempotent. */
  replyVia(route: SubnetRoute): Promise<void>;
  stopReplyingVia(route: SubnetRoute): Promise<void>;
}

export interface HoldOptions {
  /** Announce the VIP on its port now (default true). */
  readonly announce?: boolean;
  /** The port's subnet: replies from the VIP to it leave by the port (see route-commands.ts). */
  readonly subnet?: string;
}

export class VipDriverError extends Error {
  override name = "VipDriverError";
}

/** VIPs in 127.0.0.0/8: nothing to configure, the NFS listener's bind is the hold. */
export class LoopbackVipDriver implements VipDriver {
  readonly kind = "loopback";

  async hold(vip: string): Promise<void> {
    if (Math.floor(parseIpv4(vip) / 2 ** 24) !== 127)
      throw new VipDriverError(`the loopback driver holds only 127.0.0.0/8 addresses, not ${vip}`);
  }

  async release(): Promise<void> {}

  async preparePorts(): Promise<void> {}

  /** A loopback VIP never moves between hosts: there is no client to tell. */
  async connections(): Promise<TrackedConnections> {
    return { connections: [], omittedCount: 0 };
  }

  async tickle(): Promise<void> {}

  async announce(): Promise<void> {}

  /** Loopback VIPs have no subnet to be cut off from: no route is ever planned for one. */
  async forwardFor(route: SubnetRoute): Promise<void> {
    throw new VipDriverError(`the loopback driver routes nothing (VIP ${route.vip})`);
  }

  async stopForwardingFor(): Promise<void> {}

  async replyVia(route: SubnetRoute): Promise<void> {
    throw new VipDriverError(`the loopback driver routes nothing (VIP ${route.vip})`);
  }

  async stopReplyingVia(): Promise<void> {}
}

/**
 * Runs a command (argv) and resolves with its stdout when it exits 0 or with one of `okExitCodes`;
 * otherwise rejects with its stderr.
 */
export type CommandRunner = (argv: readonly string[], okExitCodes?: readonly number[]) => Promise<string>;

const COMMAND_TIMEOUT_MS = 5000;
/** ss prints ~100 bytes a connection: this holds every connection of a VIP, and far more than we keep. */
const COMMAND_OUTPUT_BYTES_MAX = 4 * 1024 * 1024;
/** Seconds between two announcements (arping's -w): it waits that long for a reply nobody sends. */
const ANNOUNCE_GAP_SECONDS = "0.05";

/** Runs commands on this host, or inside a network namespace when `namespace` is given. */
export function commandRunner(namespace?: string): CommandRunner {
  return (argv, okExitCodes = []) =>
    new Promise((resolve, reject) => {
      const [program, ...args] = namespace === undefined ? argv : ["ip", "netns", "exec", namespace, ...argv];
      execFile(
        program as string,
        args,
        { timeout: COMMAND_TIMEOUT_MS, maxBuffer: COMMAND_OUTPUT_BYTES_MAX },
        (error, stdout, stderr) => {
          if (error === null || (typeof error.code === "number" && okExitCodes.includes(error.code)))
            resolve(stdout);
          else reject(new VipDriverError(`${quoted(argv)} failed: ${stderr.trim() || error.message}`));
        },
      );
    });
}

/** A tickle's command line holds up to a thousand connections: an error quotes only its start. */
const QUOTED_COMMAND_CHARS_MAX = 200;

function quoted(argv: readonly string[]): string {
  const text = argv.join(" ");
  return text.length > QUOTED_COMMAND_CHARS_MAX ? `${text.slice(0, QUOTED_COMMAND_CHARS_MAX)}...` : text;
}

export interface LinuxVipDriverOptions {
  readonly run: CommandRunner;
  /** The VIPs' prefix length on their port (a /32 keeps the port's own subnet route the only one). */
  readonly prefix?: number;
  /** Gratuitous ARP announcements sent when a VIP arrives. */
  readonly announcements?: number;
  /** The tickle program's path (default: tickle.ts builds it on first use). */
  readonly tickleProgram?: () => Promise<string>;
}

export class LinuxVipDriver implements VipDriver {
  readonly kind = "linux";
  private readonly run: CommandRunner;
  private readonly prefix: number;
  private readonly announcements: number;
  private readonly tickleProgram: () => Promise<string>;
  /** Where each held VIP is, so release knows the device. */
  private readonly held = new Map<string, string>();
  /** The routing table slot of each VIP replied to through a router (see route-commands.ts). */
  private readonly slots = new Map<string, number>();
  /** The routing table slot of each VIP's own port (see vipPortUpArgvs). */
  private readonly portSlots = new Map<string, number>();

  constructor(options: LinuxVipDriverOptions) {
    this.run = options.run;
    this.prefix = options.prefix ?? 32;
    this.announcements = options.announcements ?? 2;
    this.tickleProgram = options.tickleProgram ?? (() => tickleProgram());
  }

  async hold(vip: string, port: string | null, options: HoldOptions = {}): Promise<void> {
    parseIpv4(vip);
    if (port === null) throw new VipDriverError(`VIP ${vip}: the Linux driver needs a port to put it on`);
    const at = this.held.get(vip);
    if (at === port) return;
    try {
      await this.run(["ip", "addr", "add", `${vip}/${this.prefix}`, "dev", port]);
    } catch (error) {
      // Already there (a restart of this node's agent): holding it is what was asked.
      if (!(error instanceof VipDriverError && /File exists/.test(error.message))) throw error;
    }
    if (options.subnet !== undefined) {
      const ruled = this.portSlots.has(vip);
      const argvs = vipPortUpArgvs(vip, port, options.subnet, this.slotOf(this.portSlots, vip));
      // On a move the rule is there already: only the table's route changes port.
      await this.runAll(ruled ? argvs.slice(0, 1) : argvs);
    }
    // Moving between ports of this node: added on the new one before it leaves the old, so the
    // address never stops being local and sockets bound to it (the NFS listeners) stay valid.
    if (at !== undefined) await this.deleteFrom(vip, at);
    this.held.set(vip, port);
    if (options.announce ?? true) await this.announce(vip, port);
  }

  /** The VIP's table slot in `slots`, taking the first free one. */
  private slotOf(slots: Map<string, number>, vip: string): number {
    const known = slots.get(vip);
    if (known !== undefined) return known;
    const used = new Set(slots.values());
    const slot = [...Array(ROUTE_TABLES_MAX).keys()].find((s) => !used.has(s));
    if (slot === undefined)
      throw new VipDriverError(`VIP ${vip}: all ${ROUTE_TABLES_MAX} route tables are in use`);
    slots.set(vip, slot);
    return slot;
  }

  async preparePorts(ports: readonly string[]): Promise<void> {
    if (ports.length > 0) await this.run(portArpArgv(ports));
  }

  async announce(vip: string, port: string): Promise<void> {
    // Unsolicited ARP (sender and target the VIP, to the broadcast MAC): every host on the segment
    // that knows the VIP updates its cache to this port's MAC. Nobody answers one, so arping exits 1.
    const out = await this.run(
      [
        "arping",
        "-U",
        "-c",
        String(this.announcements),
        "-w",
        ANNOUNCE_GAP_SECONDS,
        "-i",
        port,
        "-S",
        vip,
        vip,
      ],
      [1],
    );
    if (!/\b[1-9]\d* packets transmitted/.test(out))
      throw new VipDriverError(`VIP ${vip}: arping sent no announcement on ${port}: ${out.trim()}`);
  }

  async release(vip: string): Promise<void> {
    const port = this.held.get(vip);
    if (port === undefined) return;
    await this.deleteFrom(vip, port);
    this.held.delete(vip);
    const slot = this.portSlots.get(vip);
    if (slot !== undefined) {
      await this.runAll(vipPortDownArgvs(vip, slot));
      this.portSlots.delete(vip);
    }
  }

  private async deleteFrom(vip: string, port: string): Promise<void> {
    try {
      await this.run(["ip", "addr", "del", `${vip}/${this.prefix}`, "dev", port]);
    } catch (error) {
      if (!(error instanceof VipDriverError && /Cannot assign requested address/.test(error.message)))
        throw error;
    }
  }

  async connections(vip: string): Promise<TrackedConnections> {
    return parseEstablished(await this.run(establishedArgv(vip)), vip);
  }

  async tickle(vip: string, connections: readonly TcpConnection[]): Promise<void> {
    if (connections.length === 0) return;
    const program = await this.tickleProgram();
    for (const argv of tickleArgvs(program, vip, connections)) {
      const out = await this.run(argv);
      const report = parseTickleReport(out);
      if (report === undefined || report.sentCount !== report.totalCount)
        throw new VipDriverError(`tickle ACKs from ${vip}: ${out.trim() || "no report"}`);
    }
  }

  async forwardFor(route: SubnetRoute): Promise<void> {
    await this.runAll(routerUpArgvs(route));
    // The clients' caches still name the owner's MAC: tell them the router's.
    await this.announce(route.vip, route.routerPort);
  }

  async stopForwardingFor(route: SubnetRoute): Promise<void> {
    await this.runAll(routerDownArgvs(route));
  }

  async replyVia(route: SubnetRoute): Promise<void> {
    await this.runAll(ownerUpArgvs(route, this.slotOf(this.slots, route.vip)));
  }

  async stopReplyingVia(route: SubnetRoute): Promise<void> {
    const slot = this.slots.get(route.vip);
    if (slot === undefined) return;
    await this.runAll(ownerDownArgvs(route, slot));
    this.slots.delete(route.vip);
  }

  /** Runs each command in turn; one that finds its work done already (see isAlreadyDone) is fine. */
  private async runAll(argvs: readonly Argv[]): Promise<void> {
    for (const argv of argvs) {
      try {
        await this.run(argv);
      } catch (error) {
        if (!(error instanceof VipDriverError && isAlreadyDone(error.message))) throw error;
      }
    }
  }
}
