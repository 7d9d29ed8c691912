// How a session ends without a logout: a resume window that passes, a newer login, a server
// shutting down; and a login again after a logout.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { loggedIn, proxy, startServer } from "./harness.js";

let server;
before(async () => {
  server = await startServer("resume_window_s = 1");
});
after(async () => {
  await server.stop();
});

test("a link down past the resume window: outstanding requests get 207, then lineOff(207)", { timeout: 120_000 }, async () => {
  const px = await proxy(server.ws);
  const a = await loggedIn(px.url, "e-alice");
  px.hold();
  px.cut();
  await a.r.next("lineReconnecting");
  a.c.getUserStatus("late");
  const t = a.c.sendCmd("e-bob", "eA==");
  assert.deepEqual(await a.r.next("getUserStatusFail"), [207, "late"]);
  assert.deepEqual(await a.r.next("sendCmdRlst"), [t, 207, ""]);
  assert.deepEqual(await a.r.next("lineOff"), [207]);
  assert.equal(a.r.all("lineResumed").length, 0);
  assert.throws(() => a.c.getUserStatus(""), (e) => e.code === 12);
  px.close();
});

test("after a logout the same object logs in again", { timeout: 120_000 }, async () => {
  const a = await loggedIn(server.url, "e-carol");
  a.c.logout();
  assert.throws(() => a.c.getUserStatus(""), (e) => e.code === 12);
  a.c.login("demo", "demo-secret", "", "e-carol", "", "again");
  assert.deepEqual(await a.r.next("loginSuccess"), ["e-carol", "again"]);
  a.c.getUserStatus("gs");
  await a.r.next("getUserStatusSuccess");
});

test("a server shutting down ends the session with lineOff(206)", { timeout: 120_000 }, async () => {
  const a = await loggedIn(server.url, "e-dave");
  await server.signal("SIGTERM");
  assert.deepEqual(await a.r.next("lineOff"), [206]);
  assert.equal(a.r.all("lineReconnecting").length, 0);
});
