/** Option parsers shared by the verbs that reach a cluster through etcd. */
import { InvalidArgumentError } from "commander";

/** Where a cluster's keys live in etcd unless --namespace says otherwise. */
export const NAMESPACE_DEFAULT = "flotilla/";

/** A comma-separated list of http(s)://HOST:PORT etcd endpoints. */
export function parseEndpoints(text: string): string[] {
  const endpoints = text.split(",").map((e) => e.trim());
  for (const endpoint of endpoints) {
    if (!/^https?:\/\/[^/\s]+$/.test(endpoint)) {
      throw new InvalidArgumentError(`"${endpoint}" is not an etcd endpoint (http://HOST:PORT)`);
    }
  }
  return endpoints;
}

/** A duration in milliseconds, 100 ms to 1 hour. */
export function parseMilliseconds(text: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < 100 || value > 3_600_000) {
    throw new InvalidArgumentError(`"${text}" is not a duration in milliseconds (100 to 3600000)`);
  }
  return value;
}
