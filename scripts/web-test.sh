#!/usr/bin/env bash
# The web client (web/, npm package crvm-web): installs its development packages from the
# lockfile, builds it, and runs its tests under Node's test runner against this workspace's
# crvm-server and crvm CLI (built here if needed): the Node tests (web/test/*.test.js) and the
# browser tests in headless Chromium driven by puppeteer-core (web/test/browser/*.test.js;
# Debian's chromium is installed when missing, see scripts/ensure-chromium.sh).
# Usage: scripts/web-test.sh [extra `node --test` args]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-node.sh
source scripts/ensure-chromium.sh
source scripts/ensure-redis.sh

cargo build -p crvm-server -p crvm-cli
bin_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug"
cd web
npm ci --no-audit --no-fund
npm run build
CRVM_BIN_DIR="$bin_dir" node --test "$@" test/*.test.js test/browser/*.test.js
