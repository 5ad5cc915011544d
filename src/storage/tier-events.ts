/**
 * A decision of the storage tier (a server declared dead, chunks re-replicated, a chunk moved by the
 * balancer), handed to whoever runs the tier's loops so it lands in the cluster's event stream; the
 * storage tier itself knows nothing of where events are kept.
 */
export interface TierEvent {
  readonly kind: "repair" | "balance";
  /** A short slug: "server-dead", "re-replicating", "re-replicated", "replaced", "hot", "full". */
  readonly cause: string;
  /** A server id, or "volume#chunk". */
  readonly subject: string;
  readonly reason: string;
  readonly details?: Readonly<Record<string, string | number | null>>;
}

export type TierEventSink = (event: TierEvent) => void;
