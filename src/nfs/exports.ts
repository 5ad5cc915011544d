import { BlockList, isIP } from "node:net";
import type { Credentials } from "../fs/index.ts";
import type { Credential } from "../rpc/types.ts";

export type Squash = "root_squash" | "all_squash" | "no_root_squash";

/** One exports(5)-style rule: which clients, read-write or read-only, and how identities map. */
export interface ExportRule {
  /** The client spec as written: a CIDR, an address, or "*". */
  readonly clients: string;
  readonly access: "rw" | "ro";
  readonly squash: Squash;
  readonly anonUid: number;
  readonly anonGid: number;
  /**
   * `sync` (the default): a namespace or attribute change is replied to only once it is committed.
   * `async`: replied at once and committed with the next transaction group (lost by a crash before it).
   */
  readonly sync: boolean;
}

export const ANON_ID_DEFAULT = 65534;
const ID_MAX = 0xffffffff;

/** A rule that could not be parsed, with what is wrong. */
export class ExportRuleError extends Error {
  override name = "ExportRuleError";
}

/** Parses `CLIENTS(option,...)`, e.g. `10.0.0.0/8(rw,no_root_squash)` or `*(ro,all_squash,anonuid=1000)`. */
export function parseExportRule(text: string): ExportRule {
  const match = /^\s*([^()\s]+)\s*(?:\(([^()]*)\))?\s*$/.exec(text);
  if (match === null)
    throw new ExportRuleError(`export rule "${text}" is not CLIENTS(OPTIONS), e.g. 10.0.0.0/8(rw)`);
  const clients = match[1]!;
  prefixOf(clients);
  let access: "rw" | "ro" = "rw";
  let squash: Squash = "root_squash";
  let anonUid = ANON_ID_DEFAULT;
  let anonGid = ANON_ID_DEFAULT;
  let sync = true;
  for (const raw of (match[2] ?? "").split(",")) {
    const option = raw.trim();
    if (option === "") continue;
    if (option === "rw" || option === "ro") access = option;
    else if (option === "root_squash" || option === "all_squash" || option === "no_root_squash")
      squash = option;
    else if (option === "sync" || option === "async") sync = option === "sync";
    else if (option.startsWith("anonuid=")) anonUid = parseId(option, text);
    else if (option.startsWith("anongid=")) anonGid = parseId(option, text);
    else
      throw new ExportRuleError(
        `export rule "${text}": unknown option "${option}" (rw, ro, sync, async, root_squash, all_squash, no_root_squash, anonuid=N, anongid=N)`,
      );
  }
  return { clients, access, squash, anonUid, anonGid, sync };
}

function parseId(option: string, rule: string): number {
  const text = option.slice(option.indexOf("=") + 1);
  const value = Number(text);
  if (!/^\d+$/.test(text) || value > ID_MAX)
    throw new ExportRuleError(`export rule "${rule}": "${option}" needs an id from 0 to ${ID_MAX}`);
  return value;
}

interface Prefix {
  readonly family: "ipv4" | "ipv6";
  readonly network: string;
  readonly bits: number;
}

/** The network of a client spec; "*" is every address. */
function prefixOf(clients: string): Prefix[] {
  if (clients === "*") {
    return [
      { family: "ipv4", network: "0.0.0.0", bits: 0 },
      { family: "ipv6", network: "::", bits: 0 },
    ];
  }
  const [network = "", bitsText] = clients.split("/");
  const version = isIP(network);
  if (version === 0) throw new ExportRuleError(`"${clients}" is not an address, a CIDR or "*"`);
  const family = version === 4 ? "ipv4" : "ipv6";
  const widest = version === 4 ? 32 : 128;
  const bits = bitsText === undefined ? widest : Number(bitsText);
  if (
    !Number.isInteger(bits) ||
    bits < 0 ||
    bits > widest ||
    (bitsText !== undefined && !/^\d+$/.test(bitsText))
  ) {
    throw new ExportRuleError(`"${clients}": prefix length must be 0 to ${widest}`);
  }
  return [{ family, network, bits }];
}

interface CompiledRule {
  readonly rule: ExportRule;
  readonly list: BlockList;
  readonly bits: number;
}

/** The rules of one vserver's export; the most specific matching rule decides. */
export class ExportTable {
  private readonly compiled: CompiledRule[];
  readonly rules: readonly ExportRule[];

  constructor(rules: readonly ExportRule[]) {
    this.rules = rules;
    this.compiled = rules.map((rule) => {
      const list = new BlockList();
      let bits = 0;
      for (const p of prefixOf(rule.clients)) {
        list.addSubnet(p.network, p.bits, p.family);
        bits = p.bits;
      }
      return { rule, list, bits };
    });
  }

  /** The rule for a client, or undefined when no rule admits it. */
  ruleFor(address: string): ExportRule | undefined {
    const family = isIP(address) === 6 ? "ipv6" : "ipv4";
    let best: CompiledRule | undefined;
    for (const c of this.compiled) {
      if (c.list.check(address, family) && (best === undefined || c.bits > best.bits)) best = c;
    }
    return best?.rule;
  }
}

/** The identity a request acts as, after the rule's squashing. AUTH_NONE is the anonymous user. */
export function effectiveCredentials(rule: ExportRule, credential: Credential): Credentials {
  const anonymous: Credentials = { uid: rule.anonUid, gid: rule.anonGid, gids: [] };
  if (credential.flavor === "none" || rule.squash === "all_squash") return anonymous;
  const { uid, gid, gids } = credential.sys;
  if (rule.squash === "no_root_squash") return { uid, gid, gids };
  return {
    uid: uid === 0 ? rule.anonUid : uid,
    gid: gid === 0 ? rule.anonGid : gid,
    gids: gids.map((g) => (g === 0 ? rule.anonGid : g)),
  };
}
