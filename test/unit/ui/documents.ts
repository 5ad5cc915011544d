/** A small status and storage document as the admin API answers them, for the view tests. */
import type { NodeStatus, StatusDocument, VserverStatus } from "../../../src/api/status.ts";
import type { StorageDocument } from "../../../src/ui/storage-tables.ts";

export function nodeStatus(id: string, over: Partial<NodeStatus> = {}): NodeStatus {
  return {
    id,
    alive: true,
    operatorState: "enabled",
    roles: ["filer", "storage"],
    isMaster: false,
    vservers: [],
    loadPerCore: 0.25,
    memoryFreeBytes: 1024 ** 3,
    ports: [],
    ...over,
  };
}

export function vserverStatus(id: string, over: Partial<VserverStatus> = {}): VserverStatus {
  return {
    id,
    name: id,
    priority: 0,
    pinned: false,
    vips: [],
    volumes: [`${id}-data`],
    exports: [],
    node: "n1",
    generation: 1,
    state: "running",
    runningOn: "n1",
    urls: [],
    blocked: null,
    serviceState: null,
    ...over,
  };
}

export function statusDocument(over: Partial<StatusDocument> = {}): StatusDocument {
  return {
    master: { nodeId: "n1", term: 3 },
    nodes: [
      nodeStatus("n1", { isMaster: true, vservers: ["vs1"] }),
      nodeStatus("n2", { alive: false, loadPerCore: null }),
    ],
    vservers: [vserverStatus("vs1", { vips: ["127.0.1.2", "127.0.1.1"] })],
    volumes: [],
    routes: [],
    migrations: [],
    ...over,
  };
}

export function storageDocument(over: Partial<StorageDocument> = {}): StorageDocument {
  return { servers: [], volumes: [], moves: [], drains: [], ...over };
}
