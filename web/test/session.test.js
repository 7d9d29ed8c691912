// Login, presence, DND, meetings, calls, cmds and a buffer between two web clients on a real
// crvm-server.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { CrvmError } from "../dist/crvm-web.js";
import { bytes, client, loggedIn, startServer } from "./harness.js";

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server.stop();
});

test("a wrong secret is loginFail(7) with the cookie, and a second login is refused with 9", { timeout: 120_000 }, async () => {
  const { c, r } = client(server.url);
  c.login("demo", "wrong", "", "nobody", "", "my-cookie");
  assert.throws(() => c.login("demo", "demo-secret", "", "nobody", "", ""), (e) => e instanceof CrvmError && e.code === 9);
  assert.deepEqual(await r.next("loginFail"), [7, "my-cookie"]);
  assert.throws(() => c.getUserStatus(""), (e) => e.code === 12);
  c.destroy();
});

test("presence, DND and the status push", { timeout: 120_000 }, async () => {
  const a = await loggedIn(server.url, "p-alice");
  a.c.getUserStatus("gs");
  const [list, cookie] = await a.r.next("getUserStatusSuccess");
  assert.equal(cookie, "gs");
  const mine = JSON.parse(list).find((s) => s.userID === "p-alice");
  assert.deepEqual(mine, { userID: "p-alice", userStatus: 1, DNDType: 0 });
  assert.ok(list.startsWith('[{"userID":'), list);
  a.c.startUserStatusNotify("sub");
  assert.deepEqual(await a.r.next("startUserStatusNotifyRslt"), [0, "sub"]);

  const b = await loggedIn(server.url, "p-bob");
  const [online, subCookie] = await a.r.next("notifyUserStatus", (s) => JSON.parse(s).userID === "p-bob");
  assert.equal(subCookie, "sub");
  assert.deepEqual(JSON.parse(online), { userID: "p-bob", userStatus: 1, DNDType: 0 });

  b.c.setDNDStatus(3, "dnd");
  assert.deepEqual(await b.r.next("setDNDStatusSuccess"), ["dnd"]);
  const [dnd] = await a.r.next("notifyUserStatus", (s) => JSON.parse(s).userID === "p-bob");
  assert.equal(JSON.parse(dnd).DNDType, 3);
  // A callee in DND is busy.
  const id = a.c.call("p-bob", "", "", "c");
  assert.deepEqual(await a.r.next("callFail"), [id, 602, "c"]);

  b.c.logout();
  const [gone] = await a.r.next("notifyUserStatus", (s) => JSON.parse(s).userID === "p-bob");
  assert.equal(JSON.parse(gone).userStatus, 0);
  a.c.stopUserStatusNotify("stop");
  assert.deepEqual(await a.r.next("stopUserStatusNotifyRslt"), [0, "stop"]);
  a.c.destroy();
  b.c.destroy();
});

test("meetings: create, list, destroy", { timeout: 120_000 }, async () => {
  const a = await loggedIn(server.url, "m-alice");
  a.c.createMeeting("weekly", 1, "cm");
  const [obj, cookie] = await a.r.next("createMeetingSuccess");
  assert.equal(cookie, "cm");
  const m = JSON.parse(obj);
  assert.deepEqual(Object.keys(m), ["ID", "pswd", "subject", "pubMeetUrl", "creator", "memberCount", "startTime"]);
  assert.equal(m.subject, "weekly");
  assert.notEqual(m.pswd, "");
  a.c.getMeetings("gm");
  const [list] = await a.r.next("getMeetingsSuccess");
  assert.ok(JSON.parse(list).some((x) => x.ID === m.ID));
  a.c.destroyMeeting(m.ID, "dm");
  assert.deepEqual(await a.r.next("destroyMeetingRslt"), [0, "dm"]);
  a.c.destroyMeeting(m.ID, "dm2");
  assert.deepEqual(await a.r.next("destroyMeetingRslt"), [800, "dm2"]);
  a.c.destroy();
});

test("a call accepted then hung up, and a call rejected", { timeout: 120_000 }, async () => {
  const a = await loggedIn(server.url, "c-alice");
  const b = await loggedIn(server.url, "c-bob");
  const meet = '{"ID":1}';
  const id = a.c.call("c-bob", meet, "hello", "k1");
  assert.match(id, /^c-[0-9a-f]{32}$/);
  assert.deepEqual(await a.r.next("callSuccess"), [id, "k1"]);
  assert.deepEqual(await b.r.next("notifyCallIn"), [id, meet, "c-alice", "hello"]);
  b.c.acceptCall(id, "", "yes", "k2");
  assert.deepEqual(await b.r.next("acceptCallSuccess"), [id, "k2"]);
  // The callee gave no meeting: the caller's own comes back.
  assert.deepEqual(await a.r.next("notifyCallAccepted"), [id, "yes", meet]);
  a.c.hungupCall(id, "bye", "k3");
  assert.deepEqual(await a.r.next("hungupCallSuccess"), [id, "k3"]);
  assert.deepEqual(await b.r.next("notifyCallHungup"), [id, "bye"]);
  b.c.hungupCall(id, "", "k4");
  assert.deepEqual(await b.r.next("hungupCallFail"), [id, 600, "k4"]);

  const id2 = b.c.call("c-alice", "", "again", "k5");
  await b.r.next("callSuccess");
  assert.deepEqual(await a.r.next("notifyCallIn"), [id2, "", "c-bob", "again"]);
  a.c.rejectCall(id2, "no", "k6");
  assert.deepEqual(await a.r.next("rejectCallSuccess"), [id2, "k6"]);
  assert.deepEqual(await b.r.next("notifyCallRejected"), [id2, 606, "no"]);
  a.c.acceptCall(id2, "", "", "k7");
  assert.deepEqual(await a.r.next("acceptCallFail"), [id2, 600, "k7"]);
  a.c.destroy();
  b.c.destroy();
});

test("cmds both ways, in order, as base64 or bytes, and to an offline user", { timeout: 120_000 }, async () => {
  const a = await loggedIn(server.url, "d-alice");
  const b = await loggedIn(server.url, "d-bob");
  const tasks = [];
  for (let i = 0; i < 50; i++) tasks.push(a.c.sendCmd("d-bob", Buffer.from(`cmd ${i}`).toString("base64")));
  const raw = a.c.sendCmd("d-bob", new Uint8Array([0, 255, 1]));
  for (let i = 0; i < 50; i++) {
    const [from, data] = await b.r.next("notifyCmdData");
    assert.equal(from, "d-alice");
    assert.equal(Buffer.from(data, "base64").toString(), `cmd ${i}`);
  }
  assert.deepEqual(await b.r.next("notifyCmdData"), ["d-alice", "AP8B"]);
  for (const t of [...tasks, raw]) assert.deepEqual(await a.r.next("sendCmdRlst"), [t, 0, ""]);
  const back = b.c.sendCmd("d-alice", "YmFjaw==");
  assert.deepEqual(await a.r.next("notifyCmdData"), ["d-bob", "YmFjaw=="]);
  assert.deepEqual(await b.r.next("sendCmdRlst"), [back, 0, ""]);
  const lost = a.c.sendCmd("d-nobody", "eA==");
  assert.deepEqual(await a.r.next("sendCmdRlst"), [lost, 1102, ""]);
  assert.throws(() => a.c.sendCmd("d-bob", new Uint8Array(51_201)), (e) => e.code === 1100);
  assert.throws(() => a.c.sendCmd("d-bob", "not base64!"), (e) => e.code === 13);
  a.c.destroy();
  b.c.destroy();
});

test("a buffer with progress; cancelSend of an unknown task is 1104", { timeout: 120_000 }, async () => {
  const a = await loggedIn(server.url, "b-alice");
  const b = await loggedIn(server.url, "b-bob");
  const data = bytes(3 * 1024 * 1024 + 17, 7);
  const task = a.c.sendBuffer("b-bob", data);
  const [from, got] = await b.r.next("notifyBufferData");
  assert.equal(from, "b-alice");
  assert.ok(Buffer.from(got, "base64").equals(Buffer.from(data)));
  assert.deepEqual(await a.r.next("sendBufferRlst"), [task, 0, ""]);
  const progress = a.r.all("sendProgress").filter((p) => p[0] === task);
  assert.ok(progress.length >= 2, JSON.stringify(progress));
  for (let i = 1; i < progress.length; i++) assert.ok(progress[i][1] > progress[i - 1][1]);
  assert.deepEqual(progress.at(-1), [task, data.length, data.length, ""]);
  a.c.cancelSend(task);
  assert.deepEqual(await a.r.next("cancelSendRlst"), [task, 1104, ""]);
  a.c.destroy();
  b.c.destroy();
});

test("a newer login of the same user ends the older session with lineOff(10)", { timeout: 120_000 }, async () => {
  const a = await loggedIn(server.url, "k-alice");
  const again = await loggedIn(server.url, "k-alice");
  assert.deepEqual(await a.r.next("lineOff"), [10]);
  assert.equal(a.r.all("lineReconnecting").length, 0);
  a.c.destroy();
  again.c.destroy();
});
