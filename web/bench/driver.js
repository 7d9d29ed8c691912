// crvm-bench's browser peer: headless Chromium (puppeteer-core; CRVM_CHROMIUM or
// /usr/bin/chromium) on a page with dist/crvm-web.js, logged in as USER over WS_URL, driven
// by the bench through the same lines as its own peers (bench/src/peer.rs):
//
//   setups TARGET N    → `setups NS…`: N calls, each call → notifyCallAccepted, then hung up
//   prepare PATH       → `prepared`: PATH loaded into the page as a Blob (not timed)
//   file TARGET PATH   → `file_started`, later `file_rlst CODE`: the prepared Blob, as a File
//                        named like PATH
//   floor_rtt URL N    → `floor_rtt NS…`: N round trips of 100 B on a bare WebSocket to URL
//   floor_send URL BYTES CHUNK ROOM → `floor_send NS`: BYTES in CHUNK-byte messages on a bare
//                        WebSocket, at most ROOM unsent, until URL's sink has counted them
//   quit               → `bye`
//
// It prints `ready` once logged in, `error TEXT` before exiting on failure. Times are taken in
// the page (performance.now(); the page is cross-origin isolated, so its clock is fine-grained)
// when the event handler runs, i.e. when the app sees it.
// Usage: node web/bench/driver.js WS_URL USER
import { readFileSync, statSync, createReadStream } from "node:fs";
import http from "node:http";
import { basename, dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import puppeteer from "puppeteer-core";

const WEB = join(dirname(fileURLToPath(import.meta.url)), "..");
const [wsUrl, user] = process.argv.slice(2);
if (!wsUrl || !user) {
  console.error("usage: node web/bench/driver.js WS_URL USER");
  process.exit(2);
}

const PAGE = `<!doctype html><meta charset="utf-8"><title>crvm-bench</title>
<script type="module">
import { CloudroomVideoMgr } from "/crvm-web.js";
const mgr = new CloudroomVideoMgr(${JSON.stringify(wsUrl)});
const waiters = [];
const on = (name) => mgr.on(name, (...args) => {
  const at = performance.now();
  for (const w of [...waiters]) if (w.name === name && w.pred(...args)) {
    waiters.splice(waiters.indexOf(w), 1);
    w.resolve([at, ...args]);
  }
});
for (const n of ["loginSuccess", "loginFail", "lineOff", "callFail", "notifyCallAccepted",
  "notifyCallRejected", "hungupCallSuccess", "hungupCallFail", "sendFileRlst"]) on(n);
const next = (names, pred = () => true) => new Promise((resolve) => {
  for (const name of names) waiters.push({ name, pred, resolve: (v) => {
    for (const o of names) if (o !== name) {
      const i = waiters.findIndex((w) => w.name === o && w.pred === pred);
      if (i >= 0) waiters.splice(i, 1);
    }
    resolve([name, ...v]);
  } });
});
window.bench = {
  async login(user) {
    const r = next(["loginSuccess", "loginFail"]);
    mgr.login("demo", "demo-secret", user, user, "", "");
    const [name, , code] = await r;
    if (name !== "loginSuccess") throw new Error("login failed: " + code);
    return crossOriginIsolated;
  },
  async setups(target, n) {
    const out = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      const id = mgr.call(target, "", "", "");
      const mine = (cid) => cid === id;
      const [name, t1] = await next(["notifyCallAccepted", "notifyCallRejected", "callFail"], mine);
      if (name !== "notifyCallAccepted") throw new Error("call not accepted: " + name);
      const h = next(["hungupCallSuccess", "hungupCallFail"], mine);
      mgr.hungupCall(id, "", "");
      await h;
      out.push(Math.round((t1 - t0) * 1e6));
    }
    return out;
  },
  async prepare() {
    window.prepared = await (await fetch("/file")).blob();
    return window.prepared.size;
  },
  file(target, name) {
    const id = mgr.sendFile(target, new File([window.prepared], name));
    window.fileDone = next(["sendFileRlst"], (tid) => tid === id).then(([, , , , code]) => code);
    return id;
  },
  fileDone: () => window.fileDone,
  // The floor: the same Chromium's WebSocket with no crvm-web (bench/src/wsfloor.rs).
  async open(url) {
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = () => reject(new Error("floor: no connection")); });
    return ws;
  },
  async floorRtt(url, n) {
    const ws = await this.open(url);
    const out = [];
    const msg = new Uint8Array(100);
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      const echoed = new Promise((r) => { ws.onmessage = r; });
      ws.send(msg);
      await echoed;
      out.push(Math.round((performance.now() - t0) * 1e6));
    }
    ws.close();
    return out;
  },
  async floorSend(url, total, chunk, room) {
    const ws = await this.open(url);
    const t0 = performance.now();
    for (let sent = 0; sent < total; sent += chunk) {
      while (ws.bufferedAmount > room) await new Promise((r) => setTimeout(r, 1));
      ws.send(new Uint8Array(Math.min(chunk, total - sent)));
    }
    const counted = new Promise((r) => { ws.onmessage = (ev) => r(Number(ev.data)); });
    ws.send(new Uint8Array(1));
    const got = await counted;
    const ns = Math.round((performance.now() - t0) * 1e6);
    ws.close();
    if (got !== total) throw new Error("floor: the sink counted " + got + " of " + total + " bytes");
    return ns;
  },
};
window.benchReady = true;
</script>`;

let prepared = null;
const isolation = { "cross-origin-opener-policy": "same-origin", "cross-origin-embedder-policy": "require-corp" };
const httpServer = http.createServer((req, res) => {
  const path = new URL(req.url, "http://x").pathname;
  if (path === "/") {
    res.writeHead(200, { "content-type": "text/html", ...isolation }).end(PAGE);
  } else if (path === "/crvm-web.js") {
    res.writeHead(200, { "content-type": "text/javascript", ...isolation });
    res.end(readFileSync(join(WEB, "dist", "crvm-web.js")));
  } else if (path === "/file" && prepared) {
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": statSync(prepared).size, ...isolation });
    createReadStream(prepared).pipe(res);
  } else {
    res.writeHead(404).end();
  }
});
await new Promise((r) => httpServer.listen(0, "127.0.0.1", r));

let browser;
async function stop(status) {
  await browser?.close().catch(() => {});
  httpServer.close();
  process.exit(status);
}

try {
  browser = await puppeteer.launch({
    executablePath: process.env.CRVM_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  const page = await browser.newPage();
  // Puppeteer turns on DevTools' Network domain for every page, and with it Chromium copies
  // every WebSocket message, base64-encoded, to this process (Network.webSocketFrameSent and
  // …Received): measured, that halves the page's send rate and adds about a millisecond to
  // each call setup. A user's browser has no DevTools attached, so neither has the bench's.
  await page._client().send("Network.disable");
  page.on("pageerror", (e) => console.error(`driver page error: ${e.message}`));
  await page.goto(`http://127.0.0.1:${httpServer.address().port}/`);
  await page.waitForFunction(() => window.benchReady === true);
  const isolated = await page.evaluate((u) => window.bench.login(u), user);
  if (!isolated) console.error("driver: the page is not cross-origin isolated; its clock is coarse");
  console.log("ready");
  for await (const line of createInterface({ input: process.stdin })) {
    const [cmd, ...args] = line.trim().split(/\s+/);
    if (cmd === "setups") {
      const samples = await page.evaluate((t, n) => window.bench.setups(t, n), args[0], Number(args[1]));
      console.log(`setups ${samples.join(" ")}`);
    } else if (cmd === "prepare") {
      prepared = args[0];
      await page.evaluate(() => window.bench.prepare());
      console.log("prepared");
    } else if (cmd === "file") {
      await page.evaluate((t, n) => window.bench.file(t, n), args[0], basename(args[1]));
      console.log("file_started");
      const code = await page.evaluate(() => window.bench.fileDone());
      console.log(`file_rlst ${code}`);
    } else if (cmd === "floor_rtt") {
      const samples = await page.evaluate((u, n) => window.bench.floorRtt(u, n), args[0], Number(args[1]));
      console.log(`floor_rtt ${samples.join(" ")}`);
    } else if (cmd === "floor_send") {
      const [u, total, chunk, room] = [args[0], ...args.slice(1).map(Number)];
      console.log(`floor_send ${await page.evaluate((...a) => window.bench.floorSend(...a), u, total, chunk, room)}`);
    } else if (cmd === "quit") {
      console.log("bye");
      break;
    } else {
      console.log(`error bad command ${JSON.stringify(line)}`);
    }
  }
  await stop(0);
} catch (e) {
  console.log(`error ${String(e.message ?? e).split("\n")[0]}`);
  await stop(1);
}
