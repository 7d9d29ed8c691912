// In headless Chromium, a page logged in to one node of a cluster (two crvm-server nodes
// sharing a redis-server on a Unix socket) and a C client (the `crvm` CLI) logged in to the
// other are peers: presence, cmds both ways, calls both ways.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, test } from "node:test";
import { startServer } from "../harness.js";
import { b64, chromium, cliRunner, loggedInTab, serve } from "./harness.js";

let redis, redisDir, n1, n2, web, browser;
const cli = cliRunner();

/** redis-server on a Unix socket only (port 0: no TCP), nothing on disk; resolves when ready. */
async function startRedis(dir) {
  const sock = join(dir, "redis.sock");
  const proc = spawn(
    process.env.CRVM_REDIS_SERVER ?? "redis-server",
    ["--port", "0", "--unixsocket", sock, "--save", "", "--appendonly", "no", "--dir", dir],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const exited = new Promise((r) => proc.once("exit", r));
  for await (const line of createInterface({ input: proc.stdout })) {
    if (/ready to accept connections/i.test(line)) break;
  }
  if (proc.exitCode !== null) throw new Error("redis-server exited");
  proc.stdout.resume();
  return {
    url: `unix://${sock}`,
    async stop() {
      if (proc.exitCode === null) {
        proc.kill("SIGKILL");
        await exited;
      }
    },
  };
}

before(async () => {
  redisDir = mkdtempSync(join(tmpdir(), "crvm-web-redis-"));
  redis = await startRedis(redisDir);
  web = await serve();
  const node = (id) => `[cluster]\nredis = "${redis.url}"\nnode_id = "${id}"\n`;
  n1 = await startServer(node("n1"), { origins: [web.origin] });
  n2 = await startServer(node("n2"), { origins: [web.origin] });
  browser = await chromium();
});
after(async () => {
  cli.killAll();
  await browser?.close();
  await n1?.stop();
  await n2?.stop();
  await redis?.stop();
  await web?.close();
  rmSync(redisDir, { recursive: true, force: true });
});

test("a page on node n1 and a C client on node n2: presence, cmds both ways, calls both ways", { timeout: 90_000 }, async () => {
  const t = await loggedInTab(browser, web.origin, n1.url, "b-n1");
  await t.call("startUserStatusNotify", "sub");
  await t.r.next("startUserStatusNotifyRslt");
  const rx = cli(n2.tcp, "c-n2", "--json", "receive", "--dir", n2.dir);
  await rx.line((l) => JSON.parse(l).event === "ready");
  const [on] = await t.r.next("notifyUserStatus", (s) => JSON.parse(s).userID === "c-n2");
  assert.equal(JSON.parse(on).userStatus, 1);

  const task = await t.call("sendCmd", "c-n2", b64("across nodes"));
  assert.deepEqual(await t.r.next("sendCmdRlst"), [task, 0, ""]);
  const got = JSON.parse(await rx.line((l) => JSON.parse(l).event === "cmd"));
  assert.deepEqual([got.from, got.text], ["b-n1", "across nodes"]);
  const say = cli(n2.tcp, "c-n2b", "send-cmd", "b-n1", "back across");
  assert.deepEqual(await t.r.next("notifyCmdData"), ["c-n2b", b64("back across")]);
  assert.equal(await say.exit, 0);
  rx.proc.kill("SIGTERM");
  assert.equal(await rx.exit, 0);
  await t.r.next("notifyUserStatus", (s) => JSON.parse(s).userID === "c-n2" && JSON.parse(s).userStatus === 0);

  const callee = cli(n2.tcp, "c-n2c", "answer", "--from", "b-n1");
  await callee.line((l) => l.startsWith("ready"));
  const id = await t.call("call", "c-n2c", "", "", "");
  assert.equal((await t.r.next("notifyCallAccepted"))[0], id);
  await t.call("hungupCall", id, "", "");
  await t.r.next("hungupCallSuccess");
  assert.equal(await callee.exit, 0);

  const caller = cli(n2.tcp, "c-n2d", "call", "b-n1");
  const [inId, , from] = await t.r.next("notifyCallIn");
  assert.equal(from, "c-n2d");
  await t.call("acceptCall", inId, "", "", "");
  await t.r.next("acceptCallSuccess");
  await caller.line((l) => l.startsWith("connected"));
  caller.proc.kill("SIGINT");
  assert.equal((await t.r.next("notifyCallHungup"))[0], inId);
  assert.equal(await caller.exit, 0);
  await t.close();
});
