import assert from "node:assert/strict";
import { test } from "node:test";
import {
  ExportRuleError,
  ExportTable,
  effectiveCredentials,
  parseExportRule,
} from "../../../src/nfs/exports.ts";

test("rules parse with their defaults and options", () => {
  assert.deepEqual(parseExportRule("10.0.0.0/8"), {
    clients: "10.0.0.0/8",
    access: "rw",
    squash: "root_squash",
    anonUid: 65534,
    anonGid: 65534,
    sync: true,
  });
  assert.deepEqual(parseExportRule("*(ro,all_squash,anonuid=1000,anongid=100,async)"), {
    clients: "*",
    access: "ro",
    squash: "all_squash",
    anonUid: 1000,
    anonGid: 100,
    sync: false,
  });
  assert.equal(parseExportRule("*(async,sync)").sync, true, "the last of sync and async decides");
  assert.equal(parseExportRule("::1(no_root_squash)").squash, "no_root_squash");
});

test("bad rules are refused with a reason", () => {
  for (const bad of [
    "10.0.0.0/33",
    "nonsense(rw)",
    "10.0.0.0/8(rw,fly)",
    "10.0.0.0/8(anonuid=-1)",
    "(rw)",
    "1.2.3.4/x",
  ]) {
    assert.throws(() => parseExportRule(bad), ExportRuleError, bad);
  }
});

test("the most specific matching rule decides; no match admits nobody", () => {
  const table = new ExportTable([
    parseExportRule("10.0.0.0/8(ro)"),
    parseExportRule("10.1.0.0/16(rw)"),
    parseExportRule("127.0.0.1(rw,no_root_squash)"),
  ]);
  assert.equal(table.ruleFor("10.1.2.3")?.access, "rw");
  assert.equal(table.ruleFor("10.2.2.3")?.access, "ro");
  assert.equal(table.ruleFor("127.0.0.1")?.squash, "no_root_squash");
  assert.equal(table.ruleFor("127.0.0.2"), undefined);
  assert.equal(table.ruleFor("192.168.1.1"), undefined);
  assert.equal(new ExportTable([parseExportRule("*")]).ruleFor("::1")?.access, "rw");
});

test("squashing maps root, or everyone, to the anonymous ids; AUTH_NONE is anonymous", () => {
  const sys = (uid: number, gid: number, gids: number[]) => ({
    flavor: "sys" as const,
    sys: { stamp: 0, machineName: "c", uid, gid, gids },
  });
  const rootSquash = parseExportRule("*(root_squash,anonuid=99,anongid=98)");
  assert.deepEqual(effectiveCredentials(rootSquash, sys(0, 0, [0, 5])), { uid: 99, gid: 98, gids: [98, 5] });
  assert.deepEqual(effectiveCredentials(rootSquash, sys(1000, 100, [5])), { uid: 1000, gid: 100, gids: [5] });
  const all = parseExportRule("*(all_squash,anonuid=99,anongid=98)");
  assert.deepEqual(effectiveCredentials(all, sys(1000, 100, [5])), { uid: 99, gid: 98, gids: [] });
  const none = parseExportRule("*(no_root_squash)");
  assert.deepEqual(effectiveCredentials(none, sys(0, 0, [])), { uid: 0, gid: 0, gids: [] });
  assert.deepEqual(effectiveCredentials(none, { flavor: "none" }), { uid: 65534, gid: 65534, gids: [] });
});
