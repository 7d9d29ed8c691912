// The web demo as a person uses it: the README's command (scripts/web-demo.sh, its ports made
// free ones) serves the page; two tabs log in, see each other online, exchange a message, and
// one calls the other, who accepts; a C client (the crvm CLI) shows up in the list and gets a
// message. A screenshot of the first tab goes to docs/web-demo.png with
// CRVM_UPDATE_SCREENSHOT=1, else to a temporary directory.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, test } from "node:test";
import { REPO } from "../harness.js";
import { chromium, cliRunner } from "./harness.js";

/** The command of README.md's block marked as run by this file. */
function readmeCommand() {
  const readme = readFileSync(join(REPO, "README.md"), "utf8");
  const m = /<!-- run by: web\/test\/browser\/demo\.test\.js -->\s*```sh\n([^\n]*)\n```/.exec(readme);
  assert.ok(m, "README.md has no block run by web/test/browser/demo.test.js");
  return m[1].replace(/\s+#.*$/, "").trim();
}

let demo, demoExit, demoOut, browser, shots;
const lines = [];
const cli = cliRunner();
const free = ["--http", "127.0.0.1:0", "--listen", "127.0.0.1:0", "--ws-listen", "127.0.0.1:0"];

before(async () => {
  shots = mkdtempSync(join(tmpdir(), "crvm-web-shot-"));
  const [cmd, ...args] = readmeCommand().split(/\s+/);
  demo = spawn(join(REPO, cmd), [...args, ...free], { cwd: REPO, stdio: ["ignore", "pipe", "inherit"] });
  demoExit = new Promise((r) => demo.once("exit", (code) => r(code)));
  demoOut = createInterface({ input: demo.stdout })[Symbol.asyncIterator]();
  browser = await chromium();
});
after(async () => {
  cli.killAll();
  await browser?.close();
  if (demo && demo.exitCode === null && demo.signalCode === null) {
    demo.kill("SIGTERM"); // the demo stops its crvm-server, then exits
    await demoExit;
  }
  rmSync(shots, { recursive: true, force: true });
});

/** Waits for the demo's printed line matching `re`; returns the match. */
async function printed(re) {
  for (;;) {
    const { value, done } = await demoOut.next();
    if (done) throw new Error(`the demo ended; it printed ${JSON.stringify(lines)}`);
    lines.push(value);
    const m = re.exec(value);
    if (m) return m;
  }
}

async function open(url, user) {
  const page = await browser.newPage();
  await page.setViewport({ width: 1100, height: 300 });
  await page.goto(url);
  await until(page, () => window.crvmDemoReady === true);
  await page.type("#user", user);
  await page.click("#login button");
  await until(page, (u) => document.getElementById("me").textContent === `logged in as ${u}`, user);
  return page;
}

// Conditions are polled on a timer, not on animation frames (a tab in the background has none).
const until = (page, fn, ...args) => page.waitForFunction(fn, { polling: 50, timeout: 60_000 }, ...args);
const online = (page, user) => until(page, (u) => !!document.querySelector(`#users li[data-user="${u}"]`), user);
const logged = (page, text) =>
  until(page, (t) => [...document.querySelectorAll("#log li")].some((li) => li.textContent.includes(t)), text);

test("the demo page: two tabs log in, see each other, message, call and accept; a C client joins", { timeout: 180_000 }, async () => {
  const [, url] = await printed(/^crvm web demo: open (\S+)/);
  const [, tcp] = await printed(/^crvm-server --dev: TCP (\S+),/);
  const ann = await open(url, "ann");
  const ben = await open(url, "ben");
  await online(ann, "ben");
  await online(ben, "ann");

  // Mouse input goes to the tab in front (a background tab draws no frames to click on).
  await ann.bringToFront();
  await ann.select("#to", "ben");
  await ann.type("#text", "hello ben");
  await ann.click("#message button");
  await logged(ben, "ann: hello ben");

  await ann.click('#users li[data-user="ben"] button.call');
  await until(ben, () => !document.getElementById("ringing").hidden);
  assert.equal(await ben.$eval("#ringing-text", (e) => e.textContent), "ann is calling");
  await ben.bringToFront();
  await ben.click("#accept");
  await until(ann, () => document.getElementById("call").textContent === "in a call with ben");
  await until(ben, () => document.getElementById("call").textContent === "in a call with ann");

  const carol = cli(tcp, "carol", "--json", "receive", "--dir", shots);
  await carol.line((l) => JSON.parse(l).event === "ready");
  await online(ann, "carol");
  await ann.bringToFront();
  await ann.select("#to", "carol");
  await ann.type("#text", "hello carol");
  await ann.click("#message button");
  const got = JSON.parse(await carol.line((l) => JSON.parse(l).event === "cmd"));
  assert.deepEqual([got.from, got.text], ["ann", "hello carol"]);

  const shot = process.env.CRVM_UPDATE_SCREENSHOT === "1" ? join(REPO, "docs", "web-demo.png") : join(shots, "web-demo.png");
  await ann.screenshot({ path: shot });
  assert.ok(readFileSync(shot).length > 1000);

  await ben.bringToFront();
  await ben.click("#hangup");
  await logged(ann, "ben hung up");
  carol.proc.kill("SIGTERM");
  assert.equal(await carol.exit, 0);
});
