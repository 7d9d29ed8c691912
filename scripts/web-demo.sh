#!/usr/bin/env bash
# The web demo: builds crvm-server and the crvm-web package (web/dist/crvm-web.js) when they are
# out of date, then starts `crvm-server --dev` with a WebSocket listener and serves the demo
# page (web/demo/) on http://127.0.0.1:8080/, where a person logs in, sees who is online and
# calls or messages another tab or a C client. Ctrl-C stops it.
# Usage: scripts/web-demo.sh [--http HOST:PORT] [--listen HOST:PORT] [--ws-listen HOST:PORT]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-node.sh

cargo build -q -p crvm-server -p crvm-cli
bin_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug"
cd web
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
if [ ! -f dist/crvm-web.js ] || [ -n "$(find src package.json -newer dist/crvm-web.js -print -quit)" ]; then
  npm run build
fi
exec node demo/serve.js --bin-dir "$bin_dir" "$@"
