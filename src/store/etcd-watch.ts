import type { IDuplexStream, IEvent, IWatchRequest, IWatchResponse, WatchClient } from "etcd3";
import { unreachable } from "../util/assert.ts";
import { type Clock, systemClock } from "../util/clock.ts";
import { type EtcdKeys, toNumber } from "./etcd-codec.ts";
import { toStoreError } from "./etcd-errors.ts";
import { StoreError, type Watch, type WatchEvent, type WatchOptions } from "./types.ts";

export interface EtcdWatchRequest {
  readonly prefix: string;
  readonly fromRevision: number;
  readonly onEvent: (event: WatchEvent) => void;
  readonly options: WatchOptions;
  /** How long etcd has to confirm the watch before the call fails UNAVAILABLE. */
  readonly createMsMax: number;
  /** Told when the watch ends, whichever way, so the store forgets it. */
  readonly onEnded: (watch: EtcdWatch) => void;
}

type State = "creating" | "live" | "ended";

/**
 * One watch on its own gRPC stream, rather than etcd3's shared, self-reconnecting watch manager:
 * a watch that breaks must say so (the caller's view of the store is stale from then on), not resume
 * silently, and a compaction must arrive as COMPACTED with its revision, which the manager drops.
 */
export class EtcdWatch implements Watch {
  private state: State = "creating";
  private readonly stream: IDuplexStream<IWatchRequest, IWatchResponse>;
  private readonly keys: EtcdKeys;
  private readonly request: EtcdWatchRequest;
  private readonly created: PromiseWithResolvers<void> = Promise.withResolvers();

  private constructor(
    stream: IDuplexStream<IWatchRequest, IWatchResponse>,
    keys: EtcdKeys,
    request: EtcdWatchRequest,
  ) {
    this.stream = stream;
    this.keys = keys;
    this.request = request;
  }

  /** Opens the stream and resolves once etcd has created the watch. */
  static async open(
    client: WatchClient,
    keys: EtcdKeys,
    request: EtcdWatchRequest,
    clock: Clock = systemClock,
  ): Promise<EtcdWatch> {
    const stream = await client.watch();
    const watch = new EtcdWatch(stream, keys, request);
    stream.on("data", (response) => watch.onResponse(response));
    stream.on("error", (error) => watch.fail(toStoreError(error, `watch ${request.prefix}`)));
    stream.on("end", () => watch.fail(new StoreError("UNAVAILABLE", `etcd ended watch ${request.prefix}`)));
    stream.write({
      create_request: { ...keys.range(request.prefix), start_revision: request.fromRevision },
    });
    const timer = clock.every(request.createMsMax, () =>
      watch.fail(
        new StoreError(
          "UNAVAILABLE",
          `etcd did not create watch ${request.prefix} in ${request.createMsMax} ms`,
        ),
      ),
    );
    try {
      await watch.created.promise;
    } finally {
      timer[Symbol.dispose]();
    }
    return watch;
  }

  private onResponse(response: IWatchResponse): void {
    if (this.state === "ended") return;
    // Before `created`: etcd refused the watch (the open call rejects). After: it dropped it.
    if (response.canceled) {
      this.fail(this.cancelError(response));
      return;
    }
    if (response.created) {
      this.state = "live";
      this.created.resolve();
    }
    for (const event of response.events) this.deliver(this.toEvent(event));
  }

  private cancelError(response: IWatchResponse): StoreError {
    const compactRevision = toNumber(response.compact_revision, "compact_revision");
    if (compactRevision > 0) {
      return new StoreError(
        "COMPACTED",
        `watch ${this.request.prefix}: etcd compacted revisions before ${compactRevision}`,
      );
    }
    const reason = response.cancel_reason === "" ? "no reason given" : response.cancel_reason;
    return new StoreError("UNAVAILABLE", `etcd cancelled watch ${this.request.prefix}: ${reason}`);
  }

  private toEvent(event: IEvent): WatchEvent {
    // etcd3 loads enums as their names; its typings say "Put"/"Delete", the wire names are "PUT"/"DELETE".
    const type = String(event.type).toUpperCase();
    if (type === "PUT") return { type: "put", kv: this.keys.keyValue(event.kv) };
    if (type === "DELETE") {
      return {
        type: "delete",
        key: this.keys.decode(event.kv.key),
        revision: toNumber(event.kv.mod_revision, "mod_revision"),
      };
    }
    throw new StoreError("INVALID", `watch ${this.request.prefix}: etcd sent an event of type ${type}`);
  }

  private deliver(event: WatchEvent): void {
    if (this.state === "ended") return;
    try {
      this.request.onEvent(event);
    } catch (error) {
      // A throwing handler is the caller's bug: crash loudly, outside gRPC's stream machinery.
      queueMicrotask(() => {
        throw error;
      });
    }
  }

  /** Ends the watch for `error`: rejects the open call if still creating, else tells `onError`. */
  private fail(error: StoreError): void {
    const state = this.state;
    if (state === "ended") return;
    this.end();
    switch (state) {
      case "creating":
        this.created.reject(error);
        return;
      case "live":
        this.request.options.onError?.(error);
        return;
      default:
        unreachable(state);
    }
  }

  private end(): void {
    this.state = "ended";
    // Half-closing first makes etcd finish the call, and keeps etcd3 from taking the cancellation
    // below for a host failure (it checks whether the stream is still writable).
    this.stream.end();
    this.stream.cancel();
    this.request.onEnded(this);
  }

  async cancel(): Promise<void> {
    if (this.state !== "ended") this.end();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.cancel();
  }
}
