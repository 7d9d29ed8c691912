// A web client and a client of the C library (the `crvm` CLI, built on libcrvm's core) are
// peers through the same server: calls both ways, cmds both ways, files both ways (the
// end-to-end XXH3-128 checksum computed by each side is checked by the other).
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { File } from "node:buffer";
import { after, before, test } from "node:test";
import { bytes, cliRunner, loggedIn, startServer } from "./harness.js";

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  clis.killAll();
  await server.stop();
});

/** Runs the CLI as `user` against the server; `line(pred)` waits for a stdout line, `exit` for its status. */
const clis = cliRunner();
const cli = (user, ...args) => clis(server.tcp, user, ...args);

test("the web client calls a C client, which accepts; the web client hangs up", { timeout: 120_000 }, async () => {
  const w = await loggedIn(server.url, "web-caller");
  const app = cli("c-callee", "answer", "--from", "web-caller");
  await app.line((l) => l.includes("ready"));
  const id = w.c.call("c-callee", "", "from the web", "");
  await w.r.next("callSuccess");
  const [cid, ext] = await w.r.next("notifyCallAccepted");
  assert.equal(cid, id);
  assert.equal(typeof ext, "string");
  w.c.hungupCall(id, "", "");
  await w.r.next("hungupCallSuccess");
  assert.equal(await app.exit, 0);
});

test("a C client calls the web client, which accepts then hangs up", { timeout: 120_000 }, async () => {
  const w = await loggedIn(server.url, "web-callee");
  const app = cli("c-caller", "call", "web-callee");
  const [id, , caller] = await w.r.next("notifyCallIn");
  assert.equal(caller, "c-caller");
  w.c.acceptCall(id, "", "", "");
  await w.r.next("acceptCallSuccess");
  await app.line((l) => l.includes("connected"));
  w.c.hungupCall(id, "", "");
  await w.r.next("hungupCallSuccess");
  assert.equal(await app.exit, 0);
});

test("a C client rejects the web client's call: notifyCallRejected(606)", { timeout: 120_000 }, async () => {
  const w = await loggedIn(server.url, "web-rej");
  const app = cli("c-rej", "answer", "--reject");
  await app.line((l) => l.includes("ready"));
  const id = w.c.call("c-rej", "", "", "");
  assert.equal((await w.r.next("notifyCallRejected"))[0], id);
  assert.equal(w.r.all("notifyCallRejected")[0][1], 606);
  assert.equal(await app.exit, 0);
});

test("cmds and files both ways between the web client and a C client", { timeout: 120_000 }, async () => {
  const w = await loggedIn(server.url, "web-files");
  const dir = mkdtempSync(join(server.dir, "rx-"));
  const rx = cli("c-files", "receive", "--dir", dir, "--count", "1");
  await rx.line((l) => l.includes("ready"));
  const cmd = w.c.sendCmd("c-files", Buffer.from("hello C").toString("base64"));
  assert.deepEqual(await w.r.next("sendCmdRlst"), [cmd, 0, ""]);
  await rx.line((l) => l.includes("hello C"));
  const data = bytes(5 * 1024 * 1024 + 99, 21);
  const task = w.c.sendFile("c-files", new File([data], "from-web.bin"));
  assert.deepEqual(await w.r.next("sendFileRlst"), [task, "from-web.bin", 0, ""]);
  assert.equal(await rx.exit, 0);
  assert.ok(readFileSync(join(dir, "from-web.bin")).equals(Buffer.from(data)));
  assert.ok(w.r.all("sendProgress").filter((p) => p[0] === task).length >= 2);

  const say = cli("c-files2", "send-cmd", "web-files", "hello web");
  assert.deepEqual(await w.r.next("notifyCmdData"), ["c-files2", Buffer.from("hello web").toString("base64")]);
  assert.equal(await say.exit, 0);
  const path = join(dir, "to-web.bin");
  const back = bytes(5 * 1024 * 1024 + 1, 23);
  writeFileSync(path, back);
  const tx = cli("c-files2", "send-file", "web-files", path, "--no-progress");
  const [from, blob, name] = await w.r.next("notifyFileData");
  assert.deepEqual([from, name], ["c-files2", "to-web.bin"]);
  assert.ok(Buffer.from(await blob.arrayBuffer()).equals(back));
  assert.equal(await tx.exit, 0);
});
