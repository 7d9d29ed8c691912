// A browser session on a cluster node that drains (SIGTERM): the node tells it to resume at
// another node's WebSocket address (`moved`), the session goes on there — nothing lost,
// nothing doubled, not logged out.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { loggedIn, startRedis, startServer } from "./harness.js";

let redis;
const nodes = [];
before(async () => {
  redis = await startRedis();
  for (const node of ["w1", "w2"]) nodes.push(await startServer("", { cluster: { redis: redis.url, node } }));
});
after(async () => {
  for (const n of nodes) await n.stop();
  await redis.stop();
});

test("a session on a draining node follows it to another node's WebSocket", { timeout: 120_000 }, async () => {
  const [w1, w2] = nodes;
  const a = await loggedIn(w1.url, "d-alice");
  const b = await loggedIn(w2.url, "d-bob");
  for (let i = 0; i < 20; i++) b.c.sendCmd("d-alice", Buffer.from(`before ${i}`).toString("base64"));
  for (let i = 0; i < 20; i++) await a.r.next("notifyCmdData");

  // Cmds both ways while w1 drains and exits.
  const sent = [];
  for (let i = 0; i < 20; i++) sent.push(a.c.sendCmd("d-bob", Buffer.from(`drain ${i}`).toString("base64")));
  for (let i = 0; i < 20; i++) b.c.sendCmd("d-alice", Buffer.from(`to a ${i}`).toString("base64"));
  assert.equal(await w1.signal("SIGTERM"), 0);

  await a.r.next("lineResumed");
  for (let i = 0; i < 20; i++) {
    const [from, data] = await b.r.next("notifyCmdData");
    assert.equal(from, "d-alice");
    assert.equal(Buffer.from(data, "base64").toString(), `drain ${i}`);
  }
  for (const t of sent) assert.deepEqual(await a.r.next("sendCmdRlst"), [t, 0, ""]);
  const toA = [];
  for (let i = 0; i < 20; i++) {
    const [, data] = await a.r.next("notifyCmdData", (f, d) => Buffer.from(d, "base64").toString().startsWith("to a"));
    toA.push(Buffer.from(data, "base64").toString());
  }
  // In order; on failure, everything alice saw, in order, says where the order broke.
  const seen = a.r.log.map(([name, ...args]) =>
    name === "notifyCmdData" ? Buffer.from(args[1], "base64").toString() : name,
  );
  assert.deepEqual(toA, Array.from({ length: 20 }, (_, i) => `to a ${i}`), `alice saw: ${seen.join(" | ")}`);
  // The session lives at w2 now: one more round trip, then count (exactly once each).
  const probe = b.c.sendCmd("d-alice", "ZW5k");
  await b.r.next("sendCmdRlst", (t) => t === probe);
  await a.r.next("notifyCmdData", (f, d) => d === "ZW5k");
  assert.equal(a.r.all("notifyCmdData").length, 20 + 20 + 1);
  assert.equal(a.r.all("lineOff").length, 0);
});
