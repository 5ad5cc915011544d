/**
 * One node's network: its ports (watched), the storage servers it reaches (probed), and the VIPs it
 * holds, each on a port chosen by the port-failover rule. On every tick it samples the ports and, when
 * a port a VIP is on has gone down, moves that VIP to a good port of the same node on its subnet. A VIP
 * with no such port stays where it is: the node then stops publishing that subnet, and the master
 * moves the vserver to a node that has it (see cluster/reach.ts).
 *
 * With no ports configured (the loopback driver of `npm start`) it holds nothing and reports only the
 * storage servers it reaches.
 */
import type { Logger } from "pino";
import { BYTE_RATE_HALF_LIFE_MS, ByteRates } from "./byte-rates.ts";
import { subnetOf } from "./cidr.ts";
import type { PortState, SubnetRoute, VipPlacement } from "./model.ts";
import { PORT_BALANCE_DEFAULT, type PortBalancePolicy, planPortBalance } from "./port-balance.ts";
import { planPortFailover } from "./port-failover.ts";
import { type PortConfig, PortMonitor, type PortReader } from "./port-monitor.ts";
import { type Prober, type ProbeTarget, StorageReach } from "./storage-reach.ts";
import { type ArpProber, SubnetProbe } from "./subnet-probe.ts";
import { routeText } from "./subnet-route.ts";
import type { TcpConnection } from "./tcp-connections.ts";
import type { VipDriver } from "./vip-driver.ts";

export interface NodeNetworkOptions {
  readonly nodeId: string;
  readonly driver: VipDriver;
  readonly ports: readonly PortConfig[];
  /** The storage servers to probe, with their addresses (from the registry). */
  readonly storageServers: () => readonly ProbeTarget[];
  readonly logger: Logger;
  readonly intervalMs?: number;
  readonly readPort?: PortReader;
  readonly probe?: Prober;
  /** How a port's subnet is probed (default: arping). */
  readonly arpProbe?: ArpProber;
  /** The other nodes' port addresses on `subnet`: the targets of its ports' probes. */
  readonly peerAddresses?: (subnet: string) => readonly string[];
  /** How often ports with link are probed for their subnet (default 1 s). */
  readonly subnetProbeEveryMs?: number;
  /** The routes through a router node that name this node, as router or owner (from the master). */
  readonly routes?: () => readonly SubnetRoute[];
  /** Called after a tick changed what the node reaches, so health is published at once. */
  readonly onChange?: () => void;
  /** Bytes through each VIP held here so far (its vserver's listeners there), for port balancing. */
  readonly vipBytes?: () => ReadonlyMap<string, number>;
  /** How VIPs are balanced over the node's ports on a subnet (null: not at all). */
  readonly portBalance?: PortBalancePolicy | null;
  /** How often port balancing plans (default 5 s). */
  readonly balanceEveryMs?: number;
  /** Tickle the previous holder's clients when VIPs arrive (default true). */
  readonly tickle?: boolean;
  /** How often the VIPs' connections are read for publishing (default 2 s). */
  readonly connectionsEveryMs?: number;
  /**
   * Where a vserver's client connections are kept (in the store, outside any lease, so they outlive
   * a crash of the node that held them): written when they change, read by the VIPs' next holder.
   */
  readonly connections?: {
    publish(vserverId: string, connections: readonly TcpConnection[]): Promise<void>;
    previous(vserverId: string): Promise<readonly TcpConnection[]>;
  };
}

/** Connections kept per vserver: enough for its clients, bounded for the store's record. */
export const VSERVER_CONNECTIONS_MAX = 1024;

/**
 * Link state is read on every tick: a port that lost its link is seen at most this late, and a
 * client's TCP retransmission after that finds the VIP on its new port (the first retransmission
 * comes 200 ms after a loss).
 */
export const NETWORK_TICK_MS_DEFAULT = 200;
/** Storage servers are probed at most this often (a probe round can wait a second for a timeout). */
const STORAGE_PROBE_EVERY_MS = 500;
const CONNECTIONS_EVERY_MS = 2000;
const BALANCE_EVERY_MS = 5000;
/**
 * After a balancing move, the rates need two half-lives to show it (see byte-rates.ts): until then
 * the port the VIP left still looks hot, and the node plans no further balancing moves.
 */
const BALANCE_SETTLE_MS = 2 * BYTE_RATE_HALF_LIFE_MS;
const SUBNET_PROBE_EVERY_MS = 1000;

type RouteSide = "router" | "owner";

export class NodeNetwork implements AsyncDisposable {
  private readonly options: NodeNetworkOptions;
  private readonly monitor: PortMonitor;
  private readonly storage: StorageReach;
  private readonly subnetProbe: SubnetProbe;
  private subnetProbedAt = Number.NEGATIVE_INFINITY;
  private subnetProbing: Promise<void> | undefined;
  private storageProbedAt = Number.NEGATIVE_INFINITY;
  private storageProbing: Promise<void> | undefined;
  private closing = false;
  /** Routes applied here, by side and VIP, with the text they were applied as. */
  private readonly routesApplied = new Map<string, { side: RouteSide; route: SubnetRoute; text: string }>();
  private readonly log: Logger;
  /** VIP → the vserver holding it here and the port it is on. */
  private readonly held = new Map<string, { vserverId: string; port: string | null }>();
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private lastReach = "";
  private connectionsReadAt = Number.NEGATIVE_INFINITY;
  /** Per vserver: its VIPs new here, announced once its listeners are up (see hold). */
  private readonly unannounced = new Map<string, Set<string>>();
  /** The VIP change in progress (see serially). */
  private chain: Promise<void> = Promise.resolve();
  /** Per vserver held here: its connections as last published (a stable text, to publish on change). */
  private readonly published = new Map<string, string>();
  /** Each held VIP's bytes/s (see vipBytes). */
  private readonly vipRates = new ByteRates();
  private balancedAt = performance.now();
  /** VIP moves between ports done (for failover, for balance), for tests and status. */
  readonly counters = { portMoves: 0, balanceMoves: 0, routesApplied: 0 };

  private constructor(options: NodeNetworkOptions) {
    this.options = options;
    this.monitor = new PortMonitor(options.nodeId, options.ports, options.readPort);
    this.storage = new StorageReach(options.probe);
    this.subnetProbe = new SubnetProbe(options.arpProbe);
    this.log = options.logger.child({ component: "network" });
  }

  static async start(options: NodeNetworkOptions): Promise<NodeNetwork> {
    const network = new NodeNetwork(options);
    await options.driver.preparePorts(options.ports.filter((p) => p.subnet !== null).map((p) => p.name));
    await network.refresh();
    network.timer = setInterval(() => network.tick(), options.intervalMs ?? NETWORK_TICK_MS_DEFAULT);
    network.timer.unref();
    return network;
  }

  /** A refresh, unless one is running. */
  private tick(): void {
    if (this.closing) return;
    this.ticking ??= this.refresh().finally(() => {
      this.ticking = undefined;
    });
  }

  get managesPorts(): boolean {
    return this.options.ports.length > 0;
  }

  /** Each port as last sampled; one with link that its subnet's probes no longer answer is not up. */
  ports(): PortState[] {
    return this.monitor
      .current()
      .map((p) => (p.up && this.subnetProbe.cut(p.name) ? { ...p, up: false } : p));
  }

  /** Reach labels for the node's health: client subnets with a good port, storage servers reached. */
  reaches(): string[] {
    const subnets = new Set<string>();
    for (const port of this.ports()) if (port.up && port.subnet !== null) subnets.add(port.subnet);
    const servers = this.storage.reached(this.options.storageServers().map((s) => s.serverId));
    return [...[...subnets].sort().map((s) => `subnet:${s}`), ...servers.map((s) => `storage:${s}`)];
  }

  /** Where each VIP held here is, for status. */
  placements(): VipPlacement[] {
    return [...this.held].map(([vip, at]) => ({
      vip,
      vserverId: at.vserverId,
      nodeId: this.options.nodeId,
      port: at.port,
      loadBytesPerSec: Math.round(this.vipRates.rate(vip)),
    }));
  }

  /** Whether every one of `vips` has a good port of its subnet here (always, with no ports managed). */
  reachable(vips: readonly string[]): boolean {
    if (!this.managesPorts) return true;
    const ports = this.ports();
    const subnets = [...new Set(ports.flatMap((p) => (p.subnet === null ? [] : [p.subnet])))];
    return vips.every((vip) => {
      const own = subnetOf(vip, subnets);
      return own === undefined || ports.some((p) => p.up && p.subnet === own);
    });
  }

  /** Whether some registered storage server does not answer this node's probes. */
  storageCut(): boolean {
    const ids = this.options.storageServers().map((s) => s.serverId);
    return this.storage.reached(ids).length < ids.length;
  }

  /**
   * Runs VIP changes one at a time: a tick's port failover running beside a release could put a VIP
   * back on this node after it was taken off, and two nodes answering ARP for it leaves its clients
   * talking to the one without the vserver.
   */
  private serially<T>(work: () => Promise<T>): Promise<T> {
    const next = this.chain.then(work);
    this.chain = next.then(
      () => undefined,
      () => undefined,
    );
    return next;
  }

  /**
   * Puts a vserver's VIPs on ports (before its listeners bind to them). The VIPs new here are not
   * announced yet: a client told now would reach a VIP nobody listens on, be refused, and back off
   * (libnfs's reconnects then stalled up to 30 s). `serving` announces them.
   */
  async hold(vserverId: string, vips: readonly string[]): Promise<void> {
    if (!this.managesPorts) return;
    await this.serially(async () => {
      for (const vip of vips) if (!this.held.has(vip)) this.held.set(vip, { vserverId, port: null });
      const fresh = this.unannounced.get(vserverId) ?? new Set<string>();
      this.unannounced.set(vserverId, fresh);
      await this.place(vips, fresh);
    });
  }

  /**
   * The vserver's listeners are up on its VIPs: the VIPs new here are announced, then the previous
   * holder's clients are tickled, and reconnect to listeners.
   */
  async serving(vserverId: string, vips: readonly string[]): Promise<void> {
    if (!this.managesPorts) return;
    await this.serially(async () => {
      const fresh = [...(this.unannounced.get(vserverId) ?? [])];
      this.unannounced.delete(vserverId);
      const results = await Promise.allSettled(
        fresh.flatMap((vip) => {
          const port = this.held.get(vip)?.port;
          return port === null || port === undefined ? [] : [this.options.driver.announce(vip, port)];
        }),
      );
      for (const r of results)
        if (r.status === "rejected")
          this.log.error({ err: r.reason, vserverId }, "could not announce a VIP: clients learn of it late");
    });
    await this.tickle(vserverId, vips).catch((error: unknown) =>
      this.log.warn({ err: error, vserverId }, "could not tickle the clients of the previous holder"),
    );
  }

  /**
   * Resets the connections clients had to these VIPs on their previous holder: each client answers a
   * tickle ACK with its real sequence numbers, this node's kernel (which has no such connection)
   * answers that with a RST, and the client reconnects at once instead of after its backed-off
   * retransmission timer.
   */
  private async tickle(vserverId: string, vips: readonly string[]): Promise<void> {
    if (this.options.tickle === false) return;
    const previous = (await this.options.connections?.previous(vserverId)) ?? [];
    if (previous.length === 0) return;
    const startedAt = performance.now();
    for (const vip of vips) {
      const mine = previous.filter((c) => c.local.ip === vip);
      await this.options.driver.tickle(vip, mine);
    }
    this.log.info(
      { vserverId, connections: previous.length, ms: Math.round(performance.now() - startedAt) },
      "tickled the previous holder's clients",
    );
  }

  /**
   * Publishes each held vserver's connections when they changed. Read at most every
   * CONNECTIONS_EVERY_MS: each read runs `ss` once per VIP, and a client that connected since the
   * last read and is cut off before the next reconnects at its own pace (as without tickles).
   */
  private async publishConnections(): Promise<void> {
    const sink = this.options.connections;
    if (sink === undefined) return;
    const now = performance.now();
    if (now - this.connectionsReadAt < (this.options.connectionsEveryMs ?? CONNECTIONS_EVERY_MS)) return;
    this.connectionsReadAt = now;
    const byVserver = await this.heldConnections();
    for (const [vserverId, all] of byVserver) await this.publishIfChanged(vserverId, all);
    for (const id of [...this.published.keys()]) if (!byVserver.has(id)) this.published.delete(id);
  }

  /**
   * Publishes one vserver's connections now, whatever the period: called when its stop begins, while
   * its listeners still hold them (after they close, there is nothing left to read). A client that
   * connected since the last periodic read is tickled by the next holder too, instead of waiting out
   * its retransmission timer.
   */
  async publishConnectionsOf(vserverId: string): Promise<void> {
    if (this.options.connections === undefined || !this.managesPorts) return;
    await this.publishIfChanged(vserverId, (await this.heldConnections(vserverId)).get(vserverId) ?? []);
  }

  /** The connections on the VIPs held here (of one vserver only, if given), by vserver. */
  private async heldConnections(only?: string): Promise<Map<string, TcpConnection[]>> {
    const byVserver = new Map<string, TcpConnection[]>();
    for (const [vip, at] of this.held) {
      if (only !== undefined && at.vserverId !== only) continue;
      const tracked = await this.options.driver.connections(vip);
      const list = byVserver.get(at.vserverId) ?? [];
      list.push(...tracked.connections);
      byVserver.set(at.vserverId, list);
    }
    return byVserver;
  }

  /** Writes a vserver's connections (bounded) to the store unless they are what it last wrote. */
  private async publishIfChanged(vserverId: string, all: readonly TcpConnection[]): Promise<void> {
    const sink = this.options.connections;
    if (sink === undefined) return;
    const connections = all.slice(0, VSERVER_CONNECTIONS_MAX);
    const text = connectionsText(connections);
    if (this.published.get(vserverId) === text) return;
    await sink.publish(vserverId, connections);
    this.published.set(vserverId, text);
  }

  /** Takes a vserver's VIPs off this node (after its listeners closed). */
  async release(vips: readonly string[]): Promise<void> {
    if (!this.managesPorts) return;
    const results = await this.serially(async () => {
      for (const vip of vips) {
        const owner = this.held.get(vip)?.vserverId;
        if (owner !== undefined) this.unannounced.delete(owner);
      }
      const settled = await Promise.allSettled(vips.map((vip) => this.options.driver.release(vip)));
      for (const vip of vips) this.held.delete(vip);
      return settled;
    });
    results.forEach((r, i) => {
      if (r.status === "rejected") this.log.error({ err: r.reason, vip: vips[i] }, "could not release a VIP");
    });
  }

  /**
   * VIPs not on a good port of their subnet are put on one, if the node has one, all at once. A VIP
   * new here goes into `unannounced` when given (announced later); one moving between ports is
   * announced at once.
   */
  private async place(only?: readonly string[], unannounced?: Set<string>): Promise<void> {
    const wanted = new Set(only ?? this.held.keys());
    const placements = this.placements().filter((p) => wanted.has(p.vip));
    const actions = planPortFailover(this.ports(), placements);
    const moved = await Promise.allSettled(
      actions.map(async (action) => {
        if (action.kind !== "move-vip") {
          if (action.kind === "move-vserver")
            this.log.warn(
              { vserverId: action.vserverId, reason: action.reason },
              "a vserver has no port here",
            );
          return;
        }
        const held = this.held.get(action.vip);
        if (held === undefined) return;
        const later = unannounced !== undefined && held.port === null;
        await this.holdOn(action.vip, action.toPort, !later);
        if (later) unannounced.add(action.vip);
        this.logPlaced(action.vip, held.port, action.toPort, action.reason);
        held.port = action.toPort;
      }),
    );
    const failed = moved.find((m) => m.status === "rejected");
    if (failed !== undefined) throw failed.reason;
  }

  /**
   * Moves VIPs from a hot port to a cool one of the same subnet (see port-balance.ts), at most every
   * balanceEveryMs, and not while the rates do not yet show the last move.
   */
  private async balance(): Promise<void> {
    const policy = this.options.portBalance === undefined ? PORT_BALANCE_DEFAULT : this.options.portBalance;
    const now = performance.now();
    if (policy === null || now - this.balancedAt < (this.options.balanceEveryMs ?? BALANCE_EVERY_MS)) return;
    this.balancedAt = now;
    const actions = planPortBalance(this.options.nodeId, this.ports(), this.placements(), policy);
    for (const action of actions) {
      if (action.kind !== "move-vip") continue;
      const held = this.held.get(action.vip);
      if (held === undefined || held.port !== action.fromPort) continue;
      await this.holdOn(action.vip, action.toPort, true);
      held.port = action.toPort;
      this.counters.balanceMoves++;
      this.log.warn(
        { vip: action.vip, from: action.fromPort, to: action.toPort, reason: action.reason },
        "VIP moved to another port to balance the ports",
      );
    }
    if (actions.length > 0) this.balancedAt = now + BALANCE_SETTLE_MS;
  }

  /** Puts a VIP on a port of this node, its replies to the port's subnet leaving by that port. */
  private async holdOn(vip: string, port: string, announce: boolean): Promise<void> {
    const subnet = this.options.ports.find((p) => p.name === port)?.subnet ?? undefined;
    await this.options.driver.hold(vip, port, { announce, ...(subnet === undefined ? {} : { subnet }) });
  }

  private logPlaced(vip: string, from: string | null, to: string, reason: string): void {
    if (from === null) {
      this.log.info({ vip, port: to }, "VIP up");
      return;
    }
    this.counters.portMoves++;
    this.log.warn({ vip, from, to, reason }, "VIP moved to another port");
  }

  /**
   * Starts a probe round of each port with link for its subnet, at most every subnetProbeEveryMs. It
   * runs beside the ticks, not in them: a round waits up to its timeout for answers, and a tick that
   * waited with it would be that late moving VIPs off a port whose link went down. A round that
   * changed which ports are cut off starts a tick at once.
   */
  private startSubnetProbe(): void {
    const now = performance.now();
    if (this.subnetProbing !== undefined) return;
    if (now - this.subnetProbedAt < (this.options.subnetProbeEveryMs ?? SUBNET_PROBE_EVERY_MS)) return;
    this.subnetProbedAt = now;
    const cutBefore = this.cutPorts();
    this.subnetProbing = this.probeSubnets()
      .then(() => {
        if (this.cutPorts() !== cutBefore) this.tick();
      })
      .catch((error: unknown) => this.log.warn({ err: error }, "subnet probe round failed"))
      .finally(() => {
        this.subnetProbing = undefined;
      });
  }

  /**
   * Starts a probe round of the storage servers, beside the ticks for the reason startSubnetProbe
   * gives; one that changed what the node reaches starts a tick (which publishes it).
   */
  private startStorageProbe(): void {
    const now = performance.now();
    if (this.storageProbing !== undefined || now - this.storageProbedAt < STORAGE_PROBE_EVERY_MS) return;
    this.storageProbedAt = now;
    const before = this.reaches().join();
    this.storageProbing = this.storage
      .probeAll(this.options.storageServers())
      .then(() => {
        if (this.reaches().join() !== before) this.tick();
      })
      .catch((error: unknown) => this.log.warn({ err: error }, "storage probe round failed"))
      .finally(() => {
        this.storageProbing = undefined;
      });
  }

  /** Settles when the probe rounds under way (if any) have, and their verdicts were acted on. */
  async whenProbed(): Promise<void> {
    await Promise.all([this.subnetProbing, this.storageProbing]);
    await this.ticking;
  }

  private cutPorts(): string {
    return this.options.ports
      .filter((p) => this.subnetProbe.cut(p.name))
      .map((p) => p.name)
      .join();
  }

  private async probeSubnets(): Promise<void> {
    const probed = this.monitor.current().flatMap((p) => {
      if (p.subnet === null) return [];
      const config = this.options.ports.find((c) => c.name === p.name);
      const peers = this.options.peerAddresses?.(p.subnet) ?? [];
      const targets = [...peers, ...(config?.probes ?? [])].filter((t) => t !== p.address);
      return [{ name: p.name, linkUp: p.linkUp, address: p.address, targets }];
    });
    await this.subnetProbe.round(probed);
  }

  /**
   * Brings the routes naming this node to what the master wants: the router answers and forwards,
   * the owner replies through the router. A route given up here that the owner still holds the VIP
   * of is announced again from the owner's port, so its clients come back to it directly.
   */
  private async applyRoutes(): Promise<void> {
    const me = this.options.nodeId;
    const wanted = new Map<string, { side: RouteSide; route: SubnetRoute; text: string }>();
    for (const route of this.options.routes?.() ?? []) {
      const text = routeText(route);
      if (route.routerNode === me) wanted.set(`router ${route.vip}`, { side: "router", route, text });
      if (route.ownerNode === me) wanted.set(`owner ${route.vip}`, { side: "owner", route, text });
    }
    const driver = this.options.driver;
    for (const [key, applied] of [...this.routesApplied]) {
      if (wanted.get(key)?.text === applied.text) continue;
      if (applied.side === "router") await driver.stopForwardingFor(applied.route);
      else {
        await driver.stopReplyingVia(applied.route);
        const port = this.held.get(applied.route.vip)?.port;
        if (port !== null && port !== undefined) await driver.announce(applied.route.vip, port);
      }
      this.routesApplied.delete(key);
      this.log.warn({ ...applied.route, side: applied.side }, "route through a router node taken down");
    }
    for (const [key, want] of wanted) {
      if (this.routesApplied.has(key)) continue;
      if (want.side === "router") await driver.forwardFor(want.route);
      else await driver.replyVia(want.route);
      this.routesApplied.set(key, want);
      this.counters.routesApplied++;
      this.log.warn({ ...want.route, side: want.side }, "route through a router node up");
    }
  }

  /** Applies the master's routes now (when they changed), rather than at the next tick. */
  async routesChanged(): Promise<void> {
    if (!this.managesPorts) return;
    await this.serially(() => this.applyRoutes()).catch((error: unknown) =>
      this.log.error({ err: error }, "could not apply the routes through router nodes"),
    );
  }

  /** Samples the ports, probes the storage servers and moves VIPs off dead ports now (also on every tick). */
  async refresh(): Promise<void> {
    await this.monitor.sample();
    this.startStorageProbe();
    if (this.managesPorts) this.startSubnetProbe();
    if (this.managesPorts) {
      await this.serially(() => this.place()).catch((error: unknown) =>
        this.log.error({ err: error }, "could not place VIPs"),
      );
      await this.routesChanged();
      this.vipRates.sample(this.options.vipBytes?.() ?? new Map(), performance.now());
      await this.serially(() => this.balance()).catch((error: unknown) =>
        this.log.error({ err: error }, "could not balance the VIPs over the ports"),
      );
      await this.publishConnections().catch((error: unknown) =>
        this.log.warn({ err: error }, "could not publish the VIPs' connections"),
      );
    }
    const reach = this.reaches().join();
    if (reach !== this.lastReach) {
      if (this.lastReach !== "") this.log.warn({ reaches: this.reaches() }, "what this node reaches changed");
      this.lastReach = reach;
      this.options.onChange?.();
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    clearInterval(this.timer);
    await this.ticking;
    await Promise.all([this.subnetProbing, this.storageProbing]);
    // A router that stops leaves no proxy entry answering for a VIP nobody forwards any more.
    await this.serially(async () => {
      for (const [key, applied] of [...this.routesApplied]) {
        if (applied.side === "router") await this.options.driver.stopForwardingFor(applied.route);
        else await this.options.driver.stopReplyingVia(applied.route);
        this.routesApplied.delete(key);
      }
    }).catch((error: unknown) => this.log.error({ err: error }, "could not take routes down"));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** A stable text of a connection list, to publish only what changed. */
function connectionsText(connections: readonly TcpConnection[]): string {
  return connections
    .map((c) => `${c.local.ip}:${c.local.port}-${c.remote.ip}:${c.remote.port}`)
    .sort()
    .join();
}
