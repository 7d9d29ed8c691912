// The link cut under a logged-in web client (a TCP proxy between it and the server drops every
// connection): the session resumes, nothing is lost, nothing doubled, numbers continue.
import assert from "node:assert/strict";
import { File } from "node:buffer";
import { after, before, test } from "node:test";
import WebSocket from "ws";
import { bytes, loggedIn, proxy, startServer } from "./harness.js";

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server.stop();
});

test("a cut link resumes: cmds and requests both ways while down arrive once, in order", { timeout: 120_000 }, async () => {
  const px = await proxy(server.ws);
  const a = await loggedIn(px.url, "r-alice");
  const b = await loggedIn(server.url, "r-bob");
  a.c.startUserStatusNotify("sub");
  await a.r.next("startUserStatusNotifyRslt");
  // Some traffic before the cut, so that numbers are well under way.
  for (let i = 0; i < 40; i++) b.c.sendCmd("r-alice", Buffer.from(`before ${i}`).toString("base64"));
  for (let i = 0; i < 40; i++) await a.r.next("notifyCmdData");

  px.hold();
  px.cut();
  assert.deepEqual(await a.r.next("lineReconnecting"), [207]);
  // The client's first attempt waits in the proxy; meanwhile both sides keep talking.
  await px.waiting(1);
  const sent = [];
  for (let i = 0; i < 30; i++) sent.push(a.c.sendCmd("r-bob", Buffer.from(`down ${i}`).toString("base64")));
  for (let i = 0; i < 30; i++) b.c.sendCmd("r-alice", Buffer.from(`to a ${i}`).toString("base64"));
  a.c.getUserStatus("while down");
  b.c.setDNDStatus(1, "");
  await b.r.next("setDNDStatusSuccess");
  px.release();

  const [offline] = await a.r.next("lineResumed");
  assert.ok(offline >= 0);
  for (let i = 0; i < 30; i++) {
    const [from, data] = await b.r.next("notifyCmdData");
    assert.equal(from, "r-alice");
    assert.equal(Buffer.from(data, "base64").toString(), `down ${i}`);
  }
  for (const t of sent) assert.deepEqual(await a.r.next("sendCmdRlst"), [t, 0, ""]);
  for (let i = 0; i < 30; i++) {
    const [, data] = await a.r.next("notifyCmdData");
    assert.equal(Buffer.from(data, "base64").toString(), `to a ${i}`);
  }
  const [list, cookie] = await a.r.next("getUserStatusSuccess");
  assert.equal(cookie, "while down");
  assert.ok(JSON.parse(list).some((s) => s.userID === "r-bob"));
  const [push] = await a.r.next("notifyUserStatus", (s) => JSON.parse(s).DNDType === 1);
  assert.equal(JSON.parse(push).userID, "r-bob");
  // Exactly once: one more round trip, then count.
  const probe = b.c.sendCmd("r-alice", "ZW5k");
  await b.r.next("sendCmdRlst", (t) => t === probe);
  assert.equal(a.r.all("notifyCmdData").length, 40 + 30 + 1);
  assert.equal(b.r.all("notifyCmdData").length, 30);
  assert.equal(a.r.all("lineOff").length, 0);
  assert.equal(a.r.all("lineReconnecting").length, 1);
  assert.equal(a.r.all("lineResumed").length, 1);
  // A second cut is a second reconnect, told again.
  px.cut();
  assert.deepEqual(await a.r.next("lineReconnecting"), [207]);
  await a.r.next("lineResumed");
  const again = a.c.sendCmd("r-bob", "YWdhaW4=");
  assert.deepEqual(await b.r.next("notifyCmdData"), ["r-alice", "YWdhaW4="]);
  await a.r.next("sendCmdRlst", (t) => t === again);
  px.close();
});

test("a buffer and a file cut in the middle continue after the resume, checksum and all", { timeout: 120_000 }, async () => {
  const px = await proxy(server.ws);
  const a = await loggedIn(px.url, "t-alice");
  const b = await loggedIn(server.url, "t-bob");
  const buf = bytes(6 * 1024 * 1024, 11);
  const file = bytes(4 * 1024 * 1024 + 3, 13);
  const t1 = a.c.sendBuffer("t-bob", buf);
  const t2 = b.c.sendFile("t-alice", new File([file], "in.bin"));
  await a.r.next("sendProgress", (t, sent) => t === t1 && sent > 0);
  px.cut();
  await a.r.next("lineReconnecting");
  await a.r.next("lineResumed");
  const [, got] = await b.r.next("notifyBufferData");
  assert.ok(Buffer.from(got, "base64").equals(Buffer.from(buf)));
  assert.deepEqual(await a.r.next("sendBufferRlst"), [t1, 0, ""]);
  const [, blob, name] = await a.r.next("notifyFileData");
  assert.equal(name, "in.bin");
  assert.ok(Buffer.from(await blob.arrayBuffer()).equals(Buffer.from(file)));
  assert.deepEqual(await b.r.next("sendFileRlst"), [t2, "in.bin", 0, ""]);
  assert.equal(b.r.all("notifyBufferData").length, 1);
  assert.equal(a.r.all("notifyFileData").length, 1);
  px.close();
});

test("without reconnect a cut link is lineOff(207) at once", { timeout: 120_000 }, async () => {
  const px = await proxy(server.ws);
  const a = await loggedIn(px.url, "n-alice", { reconnect: false });
  px.cut();
  assert.deepEqual(await a.r.next("lineOff"), [207]);
  assert.equal(a.r.all("lineReconnecting").length, 0);
  px.close();
});

test("the browser's online event makes the client try to resume at once", { timeout: 120_000 }, async () => {
  const target = new EventTarget();
  globalThis.addEventListener = target.addEventListener.bind(target);
  globalThis.removeEventListener = target.removeEventListener.bind(target);
  let sockets = 0;
  class Counting extends WebSocket {
    constructor(...args) {
      super(...args);
      sockets++;
    }
  }
  try {
    const px = await proxy(server.ws);
    const a = await loggedIn(px.url, "on-alice", { WebSocket: Counting });
    px.refuse(true);
    px.cut();
    await a.r.next("lineReconnecting");
    px.refuse(false);
    // Whatever the backoff's timer would do later, the event opens a socket now.
    const before = sockets;
    target.dispatchEvent(new Event("online"));
    assert.equal(sockets, before + 1);
    await a.r.next("lineResumed");
    px.close();
  } finally {
    delete globalThis.addEventListener;
    delete globalThis.removeEventListener;
  }
});
