// In headless Chromium (puppeteer-core), a page using dist/crvm-web.js and a client of the C
// library (the `crvm` CLI, libcrvm's core) are peers through one crvm-server: login from an
// allowed origin (and refusal from another), presence queried and pushed both ways, calls both
// ways accepted, rejected both ways, hung up by either side.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { startServer } from "../harness.js";
import { chromium, cliRunner, loggedInTab, serve, tab } from "./harness.js";

let server, web, other, browser;
const cli = cliRunner();
before(async () => {
  web = await serve();
  other = await serve();
  server = await startServer("", { origins: [web.origin] });
  browser = await chromium();
});
after(async () => {
  cli.killAll();
  await browser?.close();
  await server?.stop();
  await web?.close();
  await other?.close();
});

const status = (s) => JSON.parse(s);

test("a page from an allowed origin logs in; one from another origin is refused", { timeout: 60_000 }, async () => {
  const t = await loggedInTab(browser, web.origin, server.url, "b-login");
  assert.equal(await t.page.evaluate(() => location.origin), web.origin);
  const stranger = await tab(browser, other.origin, server.url);
  await stranger.call("login", "demo", "demo-secret", "b-stranger", "b-stranger", "", "ck");
  const [code, cookie] = await stranger.r.next("loginFail");
  assert.notEqual(code, 0);
  assert.equal(cookie, "ck");
  assert.equal(stranger.r.all("loginSuccess").length, 0);
  await t.call("logout");
  await stranger.close();
  await t.close();
});

test("presence: the page queries and is pushed the C client's status, and the C client sees the page", { timeout: 60_000 }, async () => {
  const t = await loggedInTab(browser, web.origin, server.url, "b-pres");
  await t.call("startUserStatusNotify", "sub");
  assert.deepEqual(await t.r.next("startUserStatusNotifyRslt"), [0, "sub"]);
  const app = cli(server.tcp, "c-pres", "receive", "--dir", server.dir);
  await app.line((l) => l.startsWith("ready"));
  const [on, cookie] = await t.r.next("notifyUserStatus", (s) => status(s).userID === "c-pres");
  assert.equal(cookie, "sub");
  assert.equal(status(on).userStatus, 1);
  await t.call("getUserStatus", "q");
  const [list, qc] = await t.r.next("getUserStatusSuccess");
  assert.equal(qc, "q");
  const users = JSON.parse(list);
  assert.ok(users.some((s) => s.userID === "c-pres" && s.userStatus === 1), list);
  assert.ok(users.some((s) => s.userID === "b-pres" && s.userStatus === 1), list);
  // The C side sees the page, do-not-disturb included.
  await t.call("setDNDStatus", 1, "dnd");
  await t.r.next("setDNDStatusSuccess");
  const seen = cli(server.tcp, "c-look", "--json", "status");
  const line = await seen.line((l) => JSON.parse(l).userID === "b-pres");
  assert.equal(JSON.parse(line).DNDType, 1);
  assert.equal(await seen.exit, 0);
  app.proc.kill("SIGTERM");
  assert.equal(await app.exit, 0);
  const [off] = await t.r.next("notifyUserStatus", (s) => status(s).userID === "c-pres" && status(s).userStatus === 0);
  assert.equal(status(off).userStatus, 0);
  await t.close();
});

test("the page calls a C client, which accepts; the page hangs up", { timeout: 60_000 }, async () => {
  const t = await loggedInTab(browser, web.origin, server.url, "b-caller");
  const app = cli(server.tcp, "c-callee", "answer", "--from", "b-caller");
  await app.line((l) => l.startsWith("ready"));
  const id = await t.call("call", "c-callee", "", "from the browser", "k");
  assert.match(id, /^c-[0-9a-f]{32}$/);
  assert.deepEqual(await t.r.next("callSuccess"), [id, "k"]);
  const [cid] = await t.r.next("notifyCallAccepted");
  assert.equal(cid, id);
  await app.line((l) => l.startsWith("connected"));
  await t.call("hungupCall", id, "", "bye");
  assert.deepEqual(await t.r.next("hungupCallSuccess"), [id, "bye"]);
  await app.line((l) => l.includes("hung up"));
  assert.equal(await app.exit, 0);
  await t.close();
});

test("a C client calls the page, which accepts; the C client hangs up", { timeout: 60_000 }, async () => {
  const t = await loggedInTab(browser, web.origin, server.url, "b-callee");
  const app = cli(server.tcp, "c-caller", "call", "b-callee");
  const [id, , caller] = await t.r.next("notifyCallIn");
  assert.equal(caller, "c-caller");
  await t.call("acceptCall", id, "", "", "acc");
  assert.deepEqual(await t.r.next("acceptCallSuccess"), [id, "acc"]);
  await app.line((l) => l.startsWith("connected"));
  app.proc.kill("SIGINT"); // the CLI's Ctrl-C hangs the call up
  const [hid] = await t.r.next("notifyCallHungup");
  assert.equal(hid, id);
  assert.equal(await app.exit, 0);
  await t.close();
});

test("rejects both ways: the C client rejects the page's call, the page rejects the C client's", { timeout: 60_000 }, async () => {
  const t = await loggedInTab(browser, web.origin, server.url, "b-rej");
  const app = cli(server.tcp, "c-rej", "answer", "--reject");
  await app.line((l) => l.startsWith("ready"));
  const id = await t.call("call", "c-rej", "", "", "");
  const [rid, reason] = await t.r.next("notifyCallRejected");
  assert.deepEqual([rid, reason], [id, 606]);
  assert.equal(await app.exit, 0);

  const caller = cli(server.tcp, "c-rej2", "call", "b-rej");
  const [inId, , from] = await t.r.next("notifyCallIn");
  assert.equal(from, "c-rej2");
  await t.call("rejectCall", inId, "", "no");
  assert.deepEqual(await t.r.next("rejectCallSuccess"), [inId, "no"]);
  // The CLI exits 1 when its call is not accepted ("call not accepted: 606" on stderr).
  assert.equal(await caller.exit, 1);
  assert.ok(caller.seen.length === 0 || !caller.seen.some((l) => l.startsWith("connected")));
  await t.close();
});
