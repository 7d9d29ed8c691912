// In headless Chromium, a page and a client of the C library (the `crvm` CLI) exchange cmds
// and 5 MB files both ways (progress events, the files byte for byte, a received file a Blob
// that is a File with its original name); the server-side link of the page is cut (a TCP proxy
// between page and server drops it) and the page resumes, losing and doubling nothing.
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { bytes, proxy, startServer } from "../harness.js";
import { b64, chromium, cliRunner, loggedInTab, serve, sha256 } from "./harness.js";

let server, web, browser;
const cli = cliRunner();
before(async () => {
  web = await serve();
  server = await startServer("", { origins: [web.origin] });
  browser = await chromium();
});
after(async () => {
  cli.killAll();
  await browser?.close();
  await server?.stop();
  await web?.close();
});

const MB5 = 5 * 1024 * 1024;

test("cmds and 5 MB files both ways between the page and a C client", { timeout: 90_000 }, async () => {
  const t = await loggedInTab(browser, web.origin, server.url, "b-data");
  const rx = cli(server.tcp, "c-data", "--json", "receive", "--dir", join(server.dir, "rx"), "--count", "1");
  await rx.line((l) => JSON.parse(l).event === "ready");

  const cmd = await t.call("sendCmd", "c-data", b64("hello C"));
  assert.deepEqual(await t.r.next("sendCmdRlst"), [cmd, 0, ""]);
  const got = JSON.parse(await rx.line((l) => JSON.parse(l).event === "cmd"));
  assert.deepEqual([got.from, got.text], ["b-data", "hello C"]);

  const task = await t.sendFile("c-data", MB5 + 99, 31, "from-browser.bin");
  assert.deepEqual(await t.r.next("sendFileRlst"), [task, "from-browser.bin", 0, ""]);
  const file = JSON.parse(await rx.line((l) => JSON.parse(l).event === "file"));
  assert.deepEqual([file.from, file.name, file.bytes], ["b-data", "from-browser.bin", MB5 + 99]);
  assert.equal(sha256(readFileSync(file.path)), sha256(bytes(MB5 + 99, 31)));
  assert.equal(await rx.exit, 0);
  const progress = t.r.all("sendProgress").filter((p) => p[0] === task);
  assert.ok(progress.length >= 2, `progress events: ${progress.length}`);
  for (let i = 1; i < progress.length; i++) assert.ok(progress[i][1] >= progress[i - 1][1]);
  assert.deepEqual(progress.at(-1).slice(1, 3), [MB5 + 99, MB5 + 99]);

  const say = cli(server.tcp, "c-data2", "send-cmd", "b-data", "hello browser");
  assert.deepEqual(await t.r.next("notifyCmdData"), ["c-data2", b64("hello browser")]);
  assert.equal(await say.exit, 0);
  const back = bytes(MB5 + 1, 33);
  const path = join(server.dir, "to-browser.bin");
  writeFileSync(path, back);
  const tx = cli(server.tcp, "c-data2", "--json", "send-file", "b-data", path);
  const [from, blob, name] = await t.r.next("notifyFileData");
  assert.deepEqual([from, name], ["c-data2", "to-browser.bin"]);
  assert.deepEqual([blob.isFile, blob.name, blob.size], [true, "to-browser.bin", MB5 + 1]);
  assert.equal(await t.sha256(blob), sha256(back));
  const last = JSON.parse(await tx.line((l) => JSON.parse(l).event === "progress" && JSON.parse(l).sent === MB5 + 1));
  assert.equal(last.total, MB5 + 1);
  assert.equal(await tx.exit, 0);
  assert.equal(t.r.all("notifyFileData").length, 1);
  await t.close();
});

test("the page's link is cut while a 20 MB file is under way; it resumes and nothing is lost or doubled", { timeout: 90_000 }, async () => {
  const px = await proxy(server.ws);
  const t = await loggedInTab(browser, web.origin, px.url, "b-cut");
  const rx = cli(server.tcp, "c-cut", "--json", "receive", "--dir", join(server.dir, "cut"));
  await rx.line((l) => JSON.parse(l).event === "ready");
  for (let i = 0; i < 10; i++) await t.call("sendCmd", "c-cut", b64(`before ${i}`));
  const task = await t.sendFile("c-cut", 4 * MB5, 41, "cut.bin");
  await t.r.next("sendProgress", (id, sent) => id === task && sent > 0);

  px.hold();
  px.cut();
  assert.deepEqual(await t.r.next("lineReconnecting"), [207]);
  await px.waiting(1);
  // While the page is away: cmds queued both ways.
  for (let i = 0; i < 10; i++) await t.call("sendCmd", "c-cut", b64(`down ${i}`));
  const say = cli(server.tcp, "c-cut2", "send-cmd", "b-cut", "while you were away");
  px.release();
  const [offline] = await t.r.next("lineResumed");
  assert.ok(offline >= 0);

  assert.deepEqual(await t.r.next("notifyCmdData"), ["c-cut2", b64("while you were away")]);
  assert.equal(await say.exit, 0);
  // The C side gets the 20 cmds in order, once each, and the file (whenever it completes).
  const texts = [];
  let file;
  while (texts.length < 20 || !file) {
    const ev = JSON.parse(await rx.line((l) => ["cmd", "file"].includes(JSON.parse(l).event)));
    if (ev.event === "cmd") texts.push(ev.text);
    else file = ev;
  }
  assert.deepEqual(texts, [...[...Array(10).keys()].map((i) => `before ${i}`), ...[...Array(10).keys()].map((i) => `down ${i}`)]);
  assert.equal(sha256(readFileSync(file.path)), sha256(bytes(4 * MB5, 41)));
  assert.deepEqual(await t.r.next("sendFileRlst"), [task, "cut.bin", 0, ""]);
  // One more cmd as a probe, then count: nothing doubled on the C side either.
  await t.call("sendCmd", "c-cut", b64("probe"));
  const probe = JSON.parse(await rx.line((l) => JSON.parse(l).event === "cmd"));
  assert.equal(probe.text, "probe");
  rx.proc.kill("SIGTERM");
  assert.equal(await rx.exit, 0);
  assert.equal(rx.seen.filter((l) => JSON.parse(l).event === "file").length, 1);
  // Exactly once: 20 results, one file result, one reconnect, no lineOff.
  assert.equal(t.r.all("sendCmdRlst").filter((r) => r[1] === 0).length, 21);
  assert.equal(t.r.all("sendFileRlst").length, 1);
  assert.equal(t.r.all("notifyCmdData").length, 1);
  assert.equal(t.r.all("lineReconnecting").length, 1);
  assert.equal(t.r.all("lineOff").length, 0);
  px.close();
  await t.close();
});
