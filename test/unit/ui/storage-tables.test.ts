/** The storage tables: servers' load, measure and hot flag; moves, drains and live moves with progress. */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { ServerStatus } from "../../../src/storage/tier-status.ts";
import {
  drainsTable,
  migrationsTable,
  movesTable,
  serversTable,
  volumesTable,
} from "../../../src/ui/storage-tables.ts";
import { statusDocument, storageDocument } from "./documents.ts";

const load = {
  measure: 0.8,
  hot: true,
  requestsPerSec: 120.4,
  bytesPerSec: 2 * 1024 * 1024,
  latencyP99Ms: 3.25,
  cpuBusy: 0.42,
  networkInBytesPerSec: 0,
  networkOutBytesPerSec: 0,
  requestsInFlight: 1,
  sequentialShare: 0.5,
  readShare: 0.5,
};

function server(serverId: string, over: Partial<ServerStatus> = {}): ServerStatus {
  return {
    serverId,
    state: "alive",
    address: "127.0.0.1:7411",
    capacityBytes: 4 * 1024 ** 3,
    allocatedBytes: 1024 ** 3,
    chunks: 12,
    load: null,
    ...over,
  };
}

test("servers: state, use of capacity, measure and the hot flag, or dashes without a load", () => {
  const text = serversTable(
    storageDocument({ servers: [server("s1", { load }), server("s2", { state: "dead" })] }),
  ).text;
  assert.match(text, /data-server="s1" data-state="alive" data-hot="true"/);
  assert.match(text, /<progress value="1073741824" max="4294967296"><\/progress> 1\.0 GiB of 4\.0 GiB/);
  assert.match(
    text,
    /<td>0\.80<\/td><td><span class="badge bad">hot<\/span><\/td><td>120<\/td><td>2\.0 MiB\/s<\/td><td>3\.3 ms<\/td><td>42%<\/td>/,
  );
  assert.match(
    text,
    /data-server="s2" data-state="dead" data-hot="false"><td>s2<\/td><td><span class="badge bad">dead/,
  );
  assert.match(text, /<td>-<\/td><td>-<\/td><td>-<\/td><td>-<\/td><td>-<\/td><td>-<\/td><\/tr>/);
});

test("chunk moves and drains with how far they got", () => {
  const storage = storageDocument({
    moves: [
      {
        volumeId: "v1",
        chunkIndex: 3,
        from: "s1",
        to: "s2",
        reason: "rebalance",
        copiedBlocks: 256,
        chunkBlocks: 1024,
      },
    ],
    drains: [
      {
        serverId: "s1",
        state: "running",
        progress: { chunksTotal: 4, chunksDone: 1, bytesTotal: 4096, bytesDone: 1024 },
        startedAtMs: 0,
        endedAtMs: null,
        error: null,
      },
    ],
  });
  assert.match(
    movesTable(storage).text,
    /data-chunk="v1#3"><td>v1#3<\/td><td>s1<\/td><td>s2<\/td><td>rebalance<\/td><td><progress value="256" max="1024"><\/progress> 25% of 1024 blocks/,
  );
  assert.match(
    drainsTable(storage).text,
    /<progress value="1024" max="4096"><\/progress> 1 of 4 chunks, 1\.0 KiB of 4\.0 KiB/,
  );
  assert.match(movesTable(storageDocument()).text, /no chunk moves under way/);
});

test("live moves: state, rounds, what was sent, why one failed", () => {
  const status = statusDocument({
    migrations: [
      {
        vserver: "vs1",
        from: "n1",
        to: "n2",
        force: false,
        requestedAtMs: 0,
        state: "failed",
        reason: "n2 <gone>",
        rounds: 2,
        pagesSent: 3,
        bytesSent: 3 * 65536,
        suspendedMs: 12,
        updatedAtMs: 0,
      },
    ],
  });
  assert.match(
    migrationsTable(status).text,
    /data-migration="vs1" data-state="failed"><td>vs1<\/td><td>n1<\/td><td>n2<\/td><td><span class="badge bad">failed<\/span><\/td><td>2<\/td><td>3 pages, 192\.0 KiB<\/td><td>12 ms<\/td><td>n2 &lt;gone&gt;<\/td>/,
  );
});

test("volumes: state, size, replicas, owner", () => {
  const status = statusDocument({
    volumes: [
      {
        id: "vs1-data",
        sizeBytes: 64 * 1024 * 1024,
        replicationFactor: 2,
        chunks: 4,
        underReplicated: 1,
        unavailable: 0,
        moving: 0,
        vserver: "vs1",
        ownerEpoch: 5,
        state: "degraded",
      },
    ],
  });
  assert.match(
    volumesTable(status).text,
    /data-volume="vs1-data" data-state="degraded"><td>vs1-data<\/td><td><span class="badge warn">degraded<\/span><\/td><td>64\.0 MiB<\/td><td>2<\/td><td>vs1<\/td><td>4<\/td><td>1<\/td><td>0<\/td><td>0<\/td><td>5<\/td>/,
  );
});
