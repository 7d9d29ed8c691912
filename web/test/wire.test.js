// The client against a scripted server on a fake WebSocket: what it writes, frame by frame.
import assert from "node:assert/strict";
import { test } from "node:test";
import { CloudroomVideoMgr, SUBPROTOCOL } from "../dist/crvm-web.js";

const enc = new TextEncoder();
const dec = new TextDecoder();

function frame(kind, payload, seq = 0, ack = 0) {
  const out = new Uint8Array(24 + payload.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, payload.length);
  out[4] = kind;
  v.setBigUint64(8, BigInt(seq));
  v.setBigUint64(16, BigInt(ack));
  out.set(payload, 24);
  return out;
}

function control(msg, seq, ack = 0) {
  const json = enc.encode(JSON.stringify(msg));
  const p = new Uint8Array(4 + json.length);
  new DataView(p.buffer).setUint32(0, json.length);
  p.set(json, 4);
  return frame(1, p, seq, ack);
}

function data(sid, bytes, seq) {
  const p = new Uint8Array(8 + bytes.length);
  new DataView(p.buffer).setBigUint64(0, BigInt(sid));
  p.set(bytes, 8);
  return frame(2, p, seq);
}

function parse(bytes) {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const f = { kind: bytes[4], seq: Number(v.getBigUint64(8)), ack: Number(v.getBigUint64(16)) };
  if (f.kind === 1) {
    const n = v.getUint32(24);
    f.msg = JSON.parse(dec.decode(bytes.subarray(28, 28 + n)));
  }
  return f;
}

/** A WebSocket whose peer is the test. */
class FakeSocket {
  static last = null;
  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.readyState = 0;
    this.bufferedAmount = 0;
    this.sent = [];
    FakeSocket.last = this;
    queueMicrotask(() => {
      this.readyState = 1;
      this.onopen?.({});
    });
  }
  send(bytes) {
    this.sent.push(parse(new Uint8Array(bytes)));
  }
  close() {
    this.readyState = 3;
  }
  deliver(bytes) {
    this.onmessage?.({ data: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) });
  }
  msgs(t) {
    return this.sent.filter((f) => f.msg?.t === t || f.msg?.c?.op?.t === t);
  }
}

async function loggedIn() {
  FakeSocket.last = null;
  const c = new CloudroomVideoMgr("ws://fake/crvm", { WebSocket: FakeSocket });
  const events = [];
  for (const name of ["loginSuccess", "notifyBufferData"]) c.on(name, (...a) => events.push([name, ...a]));
  c.login("demo", "demo-secret", "", "alice", "", "");
  while (!FakeSocket.last || FakeSocket.last.sent.length < 2) await new Promise((r) => setImmediate(r));
  const ws = FakeSocket.last;
  ws.deliver(control({ t: "welcome", c: { ver: 4, heartbeat_ms: 10000, max_buffer_bytes: 1 << 20, max_file_bytes: 1 << 20 } }, 0));
  ws.deliver(control({ t: "res", c: { re: 1, result: { t: "login", c: { user_id: "alice" } } } }, 1, 1));
  return { c, ws, events };
}

test("hello (unnumbered) then the login (numbered 1), on the crvm.<version> subprotocol", async () => {
  const { c, ws, events } = await loggedIn();
  assert.equal(ws.protocols, SUBPROTOCOL);
  assert.deepEqual(ws.sent[0].msg.t, "hello");
  assert.equal(ws.sent[0].seq, 0);
  assert.equal(ws.sent[1].seq, 1);
  assert.equal(ws.sent[1].msg.c.op.t, "login");
  assert.equal(ws.sent[1].msg.c.op.c.resume, true);
  assert.deepEqual(events, [["loginSuccess", "alice", ""]]);
  // The next frame is numbered 2 and acknowledges the server's frame 1.
  c.getUserStatus("");
  assert.deepEqual([ws.sent.at(-1).seq, ws.sent.at(-1).ack], [2, 1]);
  c.destroy();
});

test("a stream's receiver acknowledges once min(2 × the last chunk, 512 KiB) is unacknowledged", async () => {
  const { c, ws, events } = await loggedIn();
  let seq = 2;
  ws.deliver(control({ t: "incoming", c: { sid: 7, task: "t-x", from: "bob", kind: "buffer", size: 10_000, name: "" } }, seq++));
  const acks = () => ws.msgs("ack").map((f) => f.msg.c.bytes);
  ws.deliver(data(7, new Uint8Array(1000), seq++));
  assert.deepEqual(acks(), []);
  ws.deliver(data(7, new Uint8Array(1000), seq++));
  assert.deepEqual(acks(), [2000]); // 2 × 1000 unacknowledged
  ws.deliver(data(7, new Uint8Array(3000), seq++));
  assert.deepEqual(acks(), [2000]); // 3000 < 2 × 3000
  ws.deliver(data(7, new Uint8Array(3000), seq++));
  assert.deepEqual(acks(), [2000, 8000]);
  // The last bytes and the sender's hash: a final ack, then fin 1103 for a wrong checksum.
  ws.deliver(data(7, new Uint8Array(2000), seq++));
  ws.deliver(control({ t: "data_end", c: { sid: 7, hash: "0".repeat(32) } }, seq++));
  assert.deepEqual(acks(), [2000, 8000, 10_000]);
  assert.deepEqual(ws.msgs("fin").map((f) => f.msg.c), [{ sid: 7, code: 1103 }]);
  assert.equal(events.filter((e) => e[0] === "notifyBufferData").length, 0);
  c.destroy();
});

test("large chunks are acknowledged every 512 KiB at most", async () => {
  const { c, ws } = await loggedIn();
  let seq = 2;
  ws.deliver(control({ t: "incoming", c: { sid: 9, task: "t-y", from: "bob", kind: "buffer", size: 4 << 20, name: "" } }, seq++));
  for (let i = 0; i < 8; i++) ws.deliver(data(9, new Uint8Array(400 * 1024), seq++));
  assert.deepEqual(
    ws.msgs("ack").map((f) => f.msg.c.bytes),
    [2, 4, 6, 8].map((k) => k * 400 * 1024),
  );
  c.destroy();
});

test("data waits while the socket holds more than it drains in 10 ms; control never waits", async () => {
  const { c, ws } = await loggedIn();
  // From here the fake socket holds what it is given until the test drains it.
  const send = ws.send.bind(ws);
  ws.send = (bytes) => {
    ws.bufferedAmount += bytes.length;
    send(bytes);
  };
  const dataFrames = () => ws.sent.filter((f) => f.kind === 2).length;
  c.sendBuffer("bob", new Uint8Array(1 << 20));
  const offer = ws.msgs("offer")[0];
  let seq = 2;
  ws.deliver(control({ t: "res", c: { re: offer.msg.c.id, result: { t: "offer", c: { sid: 5 } } } }, seq++));
  ws.deliver(control({ t: "start", c: { sid: 5 } }, seq++));
  // Nothing measured yet: one chunk fills the smallest room (64 KiB), the rest waits.
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(dataFrames(), 1);
  // A request made now goes out at once, ahead of the data still waiting.
  c.getUserStatus("");
  assert.equal(ws.sent.at(-1).msg.c.op.t, "get_user_status");
  // The socket drains what it held; the link measures how fast and lets that much in.
  const before = dataFrames();
  ws.bufferedAmount = 0;
  while (dataFrames() === before) await new Promise((r) => setTimeout(r, 1));
  assert.ok(dataFrames() > before, "data flows again once the socket drains");
  assert.ok(ws.bufferedAmount > 0, "and fills the socket only up to its room");
  c.destroy();
});

test("a call ends once for each party: a second end the server tells is not passed on", async () => {
  const { c, ws } = await loggedIn();
  const ends = [];
  for (const name of ["notifyCallHungup", "notifyCallRejected", "hungupCallSuccess"]) {
    c.on(name, (...a) => ends.push([name, ...a]));
  }
  let seq = 2;
  // Rung, hung up by the caller, then told again (a cluster after a Redis failover).
  ws.deliver(control({ t: "call_in", c: { call_id: "c1", caller: "bob", meet_obj: "", ext: "" } }, seq++));
  ws.deliver(control({ t: "call_hungup", c: { call_id: "c1", ext: "" } }, seq++));
  ws.deliver(control({ t: "call_hungup", c: { call_id: "c1", ext: "" } }, seq++));
  assert.deepEqual(ends, [["notifyCallHungup", "c1", ""]]);
  // Its own hang-up's result passes; an end told after it does not.
  c.hungupCall("c2");
  const re = ws.msgs("hangup_call").at(-1).msg.c.id;
  ws.deliver(control({ t: "res", c: { re, result: { t: "ok" } } }, seq++));
  ws.deliver(control({ t: "call_rejected", c: { call_id: "c2", reason: 603, ext: "" } }, seq++));
  // The end of a call never heard of passes: it is its first.
  ws.deliver(control({ t: "call_hungup", c: { call_id: "c3", ext: "" } }, seq++));
  assert.deepEqual(ends.slice(1), [
    ["hungupCallSuccess", "c2", ""],
    ["notifyCallHungup", "c3", ""],
  ]);
  c.destroy();
});
