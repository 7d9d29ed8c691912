// Test harness: a real crvm-server with its WebSocket listener, clients on Node's `ws`, an
// event recorder to await events by name, and a TCP proxy whose connections a test can cut.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { CloudroomVideoMgr, EVENT_NAMES } from "../dist/crvm-web.js";

export const REPO = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const BIN = process.env.CRVM_BIN_DIR ?? join(REPO, "target", "debug");
export const SERVER_BIN = process.env.CRVM_SERVER_BIN ?? join(BIN, "crvm-server");
export const CLI_BIN = process.env.CRVM_CLI_BIN ?? join(BIN, "crvm");

/**
 * Starts a redis-server on a Unix socket in a directory of its own: `{ url, stop() }` (for
 * cluster nodes, `startServer`'s `cluster`).
 */
export async function startRedis() {
  const dir = mkdtempSync(join(tmpdir(), "crvm-web-redis-"));
  const sock = join(dir, "redis.sock");
  const proc = spawn("redis-server", ["--port", "0", "--unixsocket", sock, "--save", "", "--appendonly", "no", "--dir", dir], {
    stdio: ["ignore", "pipe", "ignore"],
  });
  const lines = createInterface({ input: proc.stdout });
  for await (const line of lines) {
    if (line.toLowerCase().includes("ready to accept connections")) break;
  }
  proc.stdout.resume();
  return {
    url: `unix://${sock}`,
    async stop() {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once("exit", r));
        proc.kill("SIGKILL");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Starts crvm-server on port 0 with a WebSocket listener; `top` adds top-level config keys (or
 * a `[cluster]` table of its own); `origins` is the tenant's allowed_origins; `cluster` (e.g.
 * `{ redis, node }`) makes it a node of a cluster on that Redis.
 */
export async function startServer(top = "", { origins = ["*"], cluster = null } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "crvm-web-"));
  const config = join(dir, "crvm.toml");
  writeFileSync(
    config,
    `listen = "127.0.0.1:0"\nws_listen = "127.0.0.1:0"\npub_meet_url_base = "https://meet.test/m"\n${top}\n` +
      (cluster ? `[cluster]\nredis = "${cluster.redis}"\nnode_id = "${cluster.node}"\nnode_timeout_ms = 2000\n` : "") +
      `[[tenant]]\napp_id = "demo"\nsecret = "demo-secret"\nallowed_origins = ${JSON.stringify(origins)}\n`,
  );
  const proc = spawn(SERVER_BIN, ["--config", config, "--data-dir", join(dir, "data")], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines = createInterface({ input: proc.stdout });
  const it = lines[Symbol.asyncIterator]();
  const addr = async (prefix) => {
    for (;;) {
      const { value, done } = await it.next();
      if (done) throw new Error("crvm-server exited before " + prefix);
      if (value.startsWith(prefix)) return value.slice(prefix.length).trim();
    }
  };
  const tcp = await addr("crvm-server listening on ");
  const ws = await addr("crvm-server websocket on ");
  return {
    tcp,
    ws,
    url: `ws://${ws}/crvm`,
    dir,
    /** Sends `sig` to the server and waits for it to exit: its exit code. */
    async signal(sig) {
      const exited = new Promise((r) => proc.once("exit", (code) => r(code)));
      proc.kill(sig);
      return await exited;
    },
    async stop() {
      for (const c of made) c.destroy();
      made.clear();
      for (const p of proxies) p.close();
      proxies.clear();
      lines.close();
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once("exit", r));
        proc.kill("SIGKILL");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Every client made here, destroyed when the server stops (also after a failed assertion). */
const made = new Set();
/** Every proxy made here, closed when the server stops. */
const proxies = new Set();

/** A client on Node's WebSocket with a recorder of every event. */
export function client(url, options = {}) {
  const c = new CloudroomVideoMgr(url, { WebSocket, ...options });
  made.add(c);
  const r = new Recorder(c);
  return { c, r };
}

/** Records every event; `next(name)` waits for the next one of that name not yet taken. */
export class Recorder {
  constructor(c) {
    this.log = [];
    this.taken = new Map();
    this.waiters = [];
    for (const name of EVENT_NAMES) {
      c.on(name, (...args) => {
        this.log.push([name, ...args]);
        this.wake();
      });
    }
  }

  all(name) {
    return this.log.filter((e) => e[0] === name).map((e) => e.slice(1));
  }

  next(name, pred = () => true) {
    return new Promise((resolve) => {
      this.waiters.push({ name, pred, resolve });
      this.wake();
    });
  }

  wake() {
    this.waiters = this.waiters.filter((w) => {
      const from = this.taken.get(w.name) ?? 0;
      for (let i = from; i < this.log.length; i++) {
        const e = this.log[i];
        if (e[0] === w.name && w.pred(...e.slice(1))) {
          this.taken.set(w.name, i + 1);
          w.resolve(e.slice(1));
          return false;
        }
      }
      return true;
    });
  }
}

/** Logs `user` in and waits for loginSuccess. */
export async function loggedIn(url, user, options) {
  const k = client(url, options);
  k.c.login("demo", "demo-secret", user, user, "", "ck-" + user);
  const [id, cookie] = await k.r.next("loginSuccess");
  if (id !== user || cookie !== "ck-" + user) throw new Error(`login as ${id} ${cookie}`);
  return k;
}

/**
 * A TCP proxy to `target` ("host:port"): `cut()` ends every connection it carries (both sides
 * see the link die); `hold()` keeps new connections waiting until `release()`.
 */
export async function proxy(target) {
  const [host, port] = [target.slice(0, target.lastIndexOf(":")), Number(target.slice(target.lastIndexOf(":") + 1))];
  const live = new Set();
  let held = null;
  const carry = (down) => {
    const up = net.connect(port, host);
    const pair = [down, up];
    live.add(pair);
    const end = () => {
      down.destroy();
      up.destroy();
      live.delete(pair);
    };
    down.on("error", end).on("close", end);
    up.on("error", end).on("close", end);
    down.pipe(up);
    up.pipe(down);
  };
  let refusing = false;
  const server = net.createServer((down) => {
    if (refusing) down.destroy();
    else if (held) held.push(down);
    else carry(down);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const px = {
    url: `ws://127.0.0.1:${server.address().port}/crvm`,
    connections: () => live.size,
    cut() {
      for (const [down, up] of live) {
        down.resetAndDestroy ? down.resetAndDestroy() : down.destroy();
        up.resetAndDestroy ? up.resetAndDestroy() : up.destroy();
      }
      live.clear();
    },
    hold() {
      held = [];
    },
    /** While set, new connections are closed at once. */
    refuse(on) {
      refusing = on;
    },
    /** Resolves once `n` connections are waiting in `hold()`. */
    async waiting(n) {
      while (held.length < n) await new Promise((r) => server.once("connection", () => setImmediate(r)));
    },
    release() {
      const h = held ?? [];
      held = null;
      for (const d of h) carry(d);
    },
    close() {
      held?.forEach((d) => d.destroy());
      held = null;
      px.cut();
      server.close();
      proxies.delete(px);
    },
  };
  proxies.add(px);
  return px;
}

export function bytes(n, seed = 1) {
  const b = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/**
 * The `crvm` CLI (libcrvm's core) as `user` against `addr`; every one started is killed by
 * `killAll()`. `line(pred)` waits for a stdout line, `exit` resolves to its status.
 */
export function cliRunner() {
  const procs = new Set();
  const run = (addr, user, ...args) => {
    const proc = spawn(
      CLI_BIN,
      ["--server", addr, "--app-id", "demo", "--secret", "demo-secret", "--user", user, "--timeout", "60", ...args],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    procs.add(proc);
    const exit = new Promise((r) => proc.once("exit", (code) => r(code)));
    const it = createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
    const seen = [];
    return {
      proc,
      exit,
      seen,
      async line(pred) {
        for (;;) {
          const { value, done } = await it.next();
          if (done) throw new Error(`crvm ${args[0]} ended before the line awaited; saw ${JSON.stringify(seen)}`);
          seen.push(value);
          if (pred(value)) return value;
        }
      },
    };
  };
  run.killAll = () => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
  };
  return run;
}
