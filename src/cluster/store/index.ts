export { EmbeddedStore, HISTORY_EVENTS_MAX } from "./embedded-store.ts";
export * from "./types.ts";
