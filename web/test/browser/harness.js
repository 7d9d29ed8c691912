// Browser test harness: a static HTTP server on port 0 serving the test page and
// dist/crvm-web.js, headless Chromium driven by puppeteer-core, and a tab
// object whose methods run in the page and whose events come back to Node in order.

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import http from "node:http";
import { join } from "node:path";
import puppeteer from "puppeteer-core";
import { REPO, Recorder } from "../harness.js";

export { cliRunner } from "../harness.js";

const WEB = join(REPO, "web");
const ROUTES = {
  "/": ["test/browser/page.html", "text/html"],
  "/crvm-web.js": ["dist/crvm-web.js", "text/javascript"],
};

/** Serves ROUTES on 127.0.0.1, port 0; `origin` is what a page loaded from it sends. */
export async function serve() {
  const server = http.createServer((req, res) => {
    const route = ROUTES[new URL(req.url, "http://x").pathname];
    if (!route) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": route[1], "cache-control": "no-store" });
    res.end(readFileSync(join(WEB, route[0])));
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const origin = `http://127.0.0.1:${server.address().port}`;
  return {
    origin,
    close: () => new Promise((r) => server.close(r)),
  };
}

/** Headless Chromium: CRVM_CHROMIUM (scripts/ensure-chromium.sh sets it) or /usr/bin/chromium. */
export function chromium() {
  return puppeteer.launch({
    executablePath: process.env.CRVM_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    // Tabs in the background keep full speed: their timers and rendering are not throttled.
    args: [
      "--headless=new",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-dev-shm-usage",
      "--disable-background-timer-throttling",
      "--disable-backgrounding-occluded-windows",
      "--disable-renderer-backgrounding",
    ],
  });
}

/**
 * A new tab on the test page with a CloudroomVideoMgr for `url`: `call(method, ...args)` runs
 * the method in the page (its return value back, a thrown CrvmError rethrown), `r` records its
 * events (a received file arrives as {blob, isFile, name, size}; `sha256(ev)` hashes it there).
 */
export async function tab(browser, origin, url) {
  const page = await browser.newPage();
  const handlers = new Map();
  const r = new Recorder({ on: (name, h) => handlers.set(name, h) });
  await page.exposeFunction("crvmEvent", (name, args) => handlers.get(name)(...args));
  await page.goto(origin + "/");
  await page.waitForFunction(() => window.crvmReady === true, { polling: 50 });
  await page.evaluate((u) => window.crvmStart(u), url);
  return {
    page,
    r,
    call: (method, ...args) => page.evaluate((m, a) => window.mgr[m](...a), method, args),
    sendFile: (target, n, seed, name) =>
      page.evaluate((...a) => window.crvmSendFile(...a), target, n, seed, name),
    sha256: (ev) => page.evaluate((i) => window.crvmSha256(i), ev.blob),
    close: () => page.close(),
  };
}

/** A tab logged in as `user` (loginSuccess awaited). */
export async function loggedInTab(browser, origin, url, user) {
  const t = await tab(browser, origin, url);
  await t.call("login", "demo", "demo-secret", user, user, "", "ck-" + user);
  const [id, cookie] = await t.r.next("loginSuccess");
  if (id !== user || cookie !== "ck-" + user) throw new Error(`login as ${id} ${cookie}`);
  return t;
}

export const sha256 = (b) => createHash("sha256").update(b).digest("hex");
export const b64 = (s) => Buffer.from(s).toString("base64");

