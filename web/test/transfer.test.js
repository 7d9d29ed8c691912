// Files between web clients: both ways with progress and the end-to-end checksum, received as a
// named Blob; a cancel in flight.
import assert from "node:assert/strict";
import { File } from "node:buffer";
import { after, before, test } from "node:test";
import { bytes, loggedIn, startServer } from "./harness.js";

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  await server.stop();
});

async function sendAndCheck(from, to, toId, fromId, name, data) {
  const task = from.c.sendFile(toId, new File([data], name));
  assert.match(task, /^t-[0-9a-f]{32}$/);
  const [src, blob, org] = await to.r.next("notifyFileData");
  assert.equal(src, fromId);
  assert.equal(org, name);
  assert.equal(blob.name, name);
  assert.ok(Buffer.from(await blob.arrayBuffer()).equals(Buffer.from(data)));
  assert.deepEqual(await from.r.next("sendFileRlst"), [task, name, 0, ""]);
  const progress = from.r.all("sendProgress").filter((p) => p[0] === task);
  assert.ok(progress.length >= (data.length > 0 ? 2 : 1), JSON.stringify(progress));
  assert.deepEqual(progress.at(-1), [task, data.length, data.length, ""]);
}

test("a file of a few MB each way, with progress", { timeout: 120_000 }, async () => {
  const a = await loggedIn(server.url, "f-alice");
  const b = await loggedIn(server.url, "f-bob");
  await sendAndCheck(a, b, "f-bob", "f-alice", "report.pdf", bytes(5 * 1024 * 1024, 3));
  await sendAndCheck(b, a, "f-alice", "f-bob", "photo.jpg", bytes(3 * 1024 * 1024 + 5, 9));
  // An empty file is a file too.
  await sendAndCheck(a, b, "f-bob", "f-alice", "empty.txt", new Uint8Array(0));
  a.c.destroy();
  b.c.destroy();
});

test("a file cancelled in flight: cancelSendRlst(0), the receiver's notifyCancelSend, nothing delivered", { timeout: 120_000 }, async () => {
  const a = await loggedIn(server.url, "x-alice");
  const b = await loggedIn(server.url, "x-bob");
  const task = a.c.sendFile("x-bob", new File([bytes(20 * 1024 * 1024, 5)], "big.bin"));
  await a.r.next("sendProgress", (t) => t === task);
  a.c.cancelSend(task);
  assert.deepEqual(await a.r.next("cancelSendRlst"), [task, 0, ""]);
  assert.deepEqual(await b.r.next("notifyCancelSend"), [task]);
  // The channel still works, and nothing of the cancelled file arrived.
  const cmd = a.c.sendCmd("x-bob", "ZG9uZQ==");
  await a.r.next("sendCmdRlst", (t) => t === cmd);
  assert.equal(b.r.all("notifyFileData").length, 0);
  assert.equal(a.r.all("sendFileRlst").length, 0);
  a.c.destroy();
  b.c.destroy();
});

test("a file to an offline user ends with 1102", { timeout: 120_000 }, async () => {
  const a = await loggedIn(server.url, "o-alice");
  const task = a.c.sendFile("o-nobody", new File([bytes(1000)], "a.txt"));
  assert.deepEqual(await a.r.next("sendFileRlst"), [task, "a.txt", 1102, ""]);
  a.c.destroy();
});
