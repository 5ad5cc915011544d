/** A healthy filer node's record for unit tests, with what a test cares about overridden. */
import type { NodeRecord } from "../../src/cluster/catalog.ts";

export function nodeRecord(nodeId: string, overrides: Partial<NodeRecord> = {}): NodeRecord {
  return {
    nodeId,
    roles: ["filer"],
    vserversMax: 8,
    loadPerCore: 0,
    memoryFreeBytes: 1 << 30,
    reaches: [],
    storageServerId: null,
    adminUrl: "",
    startedAtMs: 0,
    pid: 1,
    moveAddress: "",
    statePagesFree: 0,
    statePagesMax: 0,
    serviceState: [],
    ports: [],
    vipPorts: [],
    ...overrides,
  };
}
