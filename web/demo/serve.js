// The web demo's server (run by scripts/web-demo.sh): starts `crvm-server --dev` with a
// WebSocket listener and a throwaway data dir, and serves the demo page, its config
// (/demo/config.json: the WebSocket URL) and dist/crvm-web.js over HTTP. Ctrl-C (or SIGTERM)
// stops both. Usage: node web/demo/serve.js [--http HOST:PORT] [--listen HOST:PORT]
//   [--ws-listen HOST:PORT] [--bin-dir DIR]       (port 0 picks a free port)
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const WEB = join(dirname(fileURLToPath(import.meta.url)), "..");
const { values: opt } = parseArgs({
  options: {
    http: { type: "string", default: "127.0.0.1:8080" },
    listen: { type: "string", default: "127.0.0.1:5210" },
    "ws-listen": { type: "string", default: "127.0.0.1:5211" },
    "bin-dir": { type: "string", default: join(WEB, "..", "target", "debug") },
  },
});
const hostPort = (s) => [s.slice(0, s.lastIndexOf(":")), Number(s.slice(s.lastIndexOf(":") + 1))];

const dataDir = mkdtempSync(join(tmpdir(), "crvm-web-demo-"));
const server = spawn(
  join(opt["bin-dir"], "crvm-server"),
  ["--dev", "--listen", opt.listen, "--ws-listen", opt["ws-listen"], "--data-dir", dataDir, "--log-level", "warn"],
  { stdio: ["ignore", "pipe", "inherit"] },
);
const serverExit = new Promise((r) => server.once("exit", r));
let stopping = false;
let page = null;
async function stop(status) {
  if (stopping) return;
  stopping = true;
  server.kill("SIGTERM");
  page?.close();
  await serverExit;
  rmSync(dataDir, { recursive: true, force: true });
  process.exit(status);
}
process.on("SIGINT", () => stop(0));
process.on("SIGTERM", () => stop(0));
serverExit.then((code) => {
  if (!stopping) {
    console.error(`crvm-server exited (${code})`);
    stop(1);
  }
});

// The server's stdout: "crvm-server listening on HOST:PORT", then "crvm-server websocket on …".
const addrs = {};
const lines = createInterface({ input: server.stdout });
for await (const line of lines) {
  const m = /^crvm-server (listening|websocket) on (\S+)$/.exec(line);
  if (m) addrs[m[1]] = m[2];
  if (addrs.listening && addrs.websocket) break;
}
if (!addrs.websocket) {
  console.error("crvm-server did not start");
  await stop(1);
}
server.stdout.resume();

const routes = {
  "/": [join(WEB, "demo", "index.html"), "text/html"],
  "/demo/": [join(WEB, "demo", "index.html"), "text/html"],
  "/demo/demo.js": [join(WEB, "demo", "demo.js"), "text/javascript"],
  "/demo/demo.css": [join(WEB, "demo", "demo.css"), "text/css"],
  "/crvm-web.js": [join(WEB, "dist", "crvm-web.js"), "text/javascript"],
};
page = http.createServer((req, res) => {
  const path = new URL(req.url, "http://x").pathname;
  if (path === "/demo/config.json") {
    // The page reaches the WebSocket listener on the host name it was loaded from.
    const host = (req.headers.host ?? "127.0.0.1").replace(/:\d+$/, "");
    const port = hostPort(addrs.websocket)[1];
    res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" });
    res.end(JSON.stringify({ ws: `ws://${host}:${port}/crvm` }));
    return;
  }
  const route = routes[path];
  if (!route) {
    res.writeHead(404).end("not found");
    return;
  }
  res.writeHead(200, { "content-type": route[1], "cache-control": "no-store" });
  res.end(readFileSync(route[0]));
});
const [host, port] = hostPort(opt.http);
page.listen(port, host, () => {
  const url = `http://${host}:${page.address().port}/`;
  console.log(`crvm web demo: open ${url} in two tabs and log in as two users`);
  console.log(`crvm-server --dev: TCP ${addrs.listening}, WebSocket ws://${addrs.websocket}/crvm`);
  console.log(`a C client as a third user: build/c_examples/demo ${addrs.listening}`);
  console.log(
    `  or: target/debug/crvm --server ${addrs.listening} --app-id demo --secret demo-secret --user carol answer`,
  );
  console.log("Ctrl-C stops the demo");
});
