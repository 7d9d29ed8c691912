// The package's protocol version is the one the Rust code defines.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { PROTOCOL_VERSION, SUBPROTOCOL } from "../dist/crvm-web.js";
import { REPO } from "./harness.js";

test("PROTOCOL_VERSION matches proto/src/msg.rs", { timeout: 120_000 }, () => {
  const src = readFileSync(join(REPO, "proto", "src", "msg.rs"), "utf8");
  const m = src.match(/pub const PROTOCOL_VERSION: u32 = (\d+);/);
  assert.ok(m, "PROTOCOL_VERSION not found in proto/src/msg.rs");
  assert.equal(PROTOCOL_VERSION, Number(m[1]));
  assert.equal(SUBPROTOCOL, `crvm.${m[1]}`);
});

test("the version is written in one place in the package's sources", { timeout: 120_000 }, () => {
  const src = readFileSync(join(REPO, "web", "src", "protocol.ts"), "utf8");
  assert.match(src, /export const PROTOCOL_VERSION = \d+;/);
});
