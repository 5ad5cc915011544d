/** Why a vserver is not where the rules want it, in words: for `status` and for blocked events. */
import type { Blocked } from "./model.ts";

/** Why a vserver is not where it should be, in words an operator can act on. */
export function describeBlocked(blocked: Blocked): string {
  switch (blocked.code) {
    case "pinned-node-dead":
      return `pinned, and its node ${blocked.node} is dead: it stays down until ${blocked.node} returns or you move it (flotilla vserver move)`;
    case "no-node":
      return "no node can take it: none is alive, enabled and a filer";
    case "no-capacity":
      return "every node that could take it runs as many vservers as it may";
    case "cooldown":
      return `moved recently; it leaves its draining node at ${new Date(blocked.untilMs).toISOString()}`;
    case "unreachable":
      return `its node does not reach ${blocked.missing.join(", ")}, and it stays: it is pinned, or no node that reaches all it needs has a free slot`;
  }
}
