// The event list is the library's events table (src/events.rs) under the seed's names.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { EVENT_NAMES } from "../dist/crvm-web.js";
import { REPO } from "./harness.js";

/** snake_case of the C callbacks to the seed's camelCase (DND and hungup as the seed spells them). */
function seedName(c) {
  return c.replace(/_([a-z])/g, (_, l) => l.toUpperCase()).replace("Dnd", "DND");
}

test("every event of the library's table is in the web client's list, in the same order", { timeout: 120_000 }, () => {
  const table = readFileSync(join(REPO, "src", "events.rs"), "utf8");
  const callbacks = [...table.matchAll(/=>\s*([a-z_]+)\(/g)].map((m) => m[1]);
  assert.ok(callbacks.length >= 38, `only ${callbacks.length} events found in src/events.rs`);
  assert.deepEqual([...EVENT_NAMES], callbacks.map(seedName));
});

test("the declared handler types name every event", { timeout: 120_000 }, () => {
  const dts = readFileSync(join(REPO, "web", "dist", "events.d.ts"), "utf8");
  for (const name of EVENT_NAMES) assert.match(dts, new RegExp(`\\b${name}: \\(`), name);
});
