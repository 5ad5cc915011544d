/** The cluster's tables: rows findable by data attributes, states in words, user text escaped. */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  nodesTable,
  portsTable,
  routesTable,
  vipRows,
  vipsTable,
  vserversTable,
} from "../../../src/ui/cluster-tables.ts";
import { nodeStatus, statusDocument, vserverStatus } from "./documents.ts";

test("nodes: alive or dead, master marked, load and vservers", () => {
  const text = nodesTable(statusDocument()).text;
  assert.match(
    text,
    /<tr data-node="n1" data-alive="true" data-master="true"><td>n1 <span class="master">master<\/span>/,
  );
  assert.match(
    text,
    /<tr data-node="n2" data-alive="false" data-master="false"><td>n2<\/td><td><span class="badge bad">dead/,
  );
  assert.match(text, /<td>0\.25<\/td>/);
  assert.match(text, /<td>vs1<\/td>/);
});

test("vservers: node, generation, pinned, blocked reason; a user's name is escaped", () => {
  const status = statusDocument({
    vservers: [
      vserverStatus("vs1", { name: `<script>alert("x")</script>`, generation: 7, pinned: true }),
      vserverStatus("vs2", {
        node: "n2",
        state: "down",
        runningOn: null,
        blocked: { code: "pinned-node-dead", text: "pinned, and its node n2 is dead" },
      }),
    ],
  });
  const text = vserversTable(status).text;
  assert.doesNotMatch(text, /<script>/);
  assert.match(text, /&lt;script&gt;alert\(&quot;x&quot;\)&lt;\/script&gt;/);
  assert.match(text, /data-vserver="vs1" data-node="n1" data-state="running" data-blocked="null"/);
  assert.match(text, /<td>7<\/td><td>0<\/td><td>pinned<\/td>/);
  assert.match(text, /data-vserver="vs2" data-node="n2" data-state="down" data-blocked="pinned-node-dead"/);
  assert.match(text, /<span class="blocked">pinned, and its node n2 is dead<\/span>/);
});

test("VIPs sorted, each with where it answers: its node, through a router, or nowhere", () => {
  const status = statusDocument({
    vservers: [
      vserverStatus("vs1", { vips: ["127.0.1.2", "127.0.1.1"] }),
      vserverStatus("vs2", { vips: ["127.0.2.1"], node: null, runningOn: null, state: "down" }),
    ],
    routes: [
      {
        vip: "127.0.1.2",
        vserver: "vs1",
        owner: "n1",
        router: "n3",
        routerPort: "eth1",
        viaSubnet: "10.1.0.0/24",
        reason: "n1's port to 10.2.0.0/24 is cut",
        sinceMs: 1000,
      },
    ],
  });
  assert.deepEqual(
    vipRows(status).map((r) => [r.vip, r.vserver.id, r.route?.router]),
    [
      ["127.0.1.1", "vs1", undefined],
      ["127.0.1.2", "vs1", "n3"],
      ["127.0.2.1", "vs2", undefined],
    ],
  );
  const text = vipsTable(status).text;
  assert.match(
    text,
    /data-vip="127\.0\.1\.1"[^>]*><td>127\.0\.1\.1<\/td><td>vs1<\/td><td>n1<\/td><td>directly/,
  );
  assert.match(text, /<td>through n3<\/td>/);
  assert.match(text, /<td><span class="badge bad">nowhere<\/span><\/td><td>-<\/td>/);
  const routes = routesTable(status, 61_000).text;
  assert.match(
    routes,
    /<td>n3 on eth1<\/td><td>10\.1\.0\.0\/24<\/td><td>n1&#39;s port to 10\.2\.0\.0\/24 is cut<\/td><td>60 s ago/,
  );
});

test("ports: up, cut and down in their colours; none is said", () => {
  const status = statusDocument({
    nodes: [
      nodeStatus("n1", {
        ports: [
          { name: "eth0", subnet: "10.1.0.0/24", state: "up" },
          { name: "eth1", subnet: "10.2.0.0/24", state: "cut" },
          { name: "eth2", subnet: null, state: "down" },
        ],
      }),
    ],
  });
  const text = portsTable(status).text;
  assert.match(text, /<td>eth0<\/td><td>10\.1\.0\.0\/24<\/td><td><span class="badge ok">up/);
  assert.match(text, /<span class="badge warn">cut/);
  assert.match(text, /<td>eth2<\/td><td>-<\/td><td><span class="badge bad">down/);
  assert.match(portsTable(statusDocument()).text, /<p class="empty">no ports reported/);
  assert.match(routesTable(statusDocument(), 0).text, /<p class="empty">no routed VIPs/);
});
