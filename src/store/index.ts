export { EmbeddedStore, HISTORY_EVENTS_MAX } from "./embedded-store.ts";
export { CALL_TIMEOUT_MS_DEFAULT, EtcdStore, type EtcdStoreOptions } from "./etcd-store.ts";
export { type Follower, followPrefix } from "./follow.ts";
export { type RetryOptions, retryWithBackoff } from "./retry.ts";
export * from "./types.ts";
