#!/usr/bin/env bash
# The full benchmark, crvm side by side with its anchors (socat, NATS, Redis), in one run:
# installs the anchors (and Node and Chromium for the browser rows) when missing, builds release, and runs crvm-bench with the given
# arguments (see `crvm-bench --help`; docs/PERFORMANCE.md).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-anchors.sh
cargo build --release -p crvm-bench -p crvm-server
# Section (l) drives headless Chromium running crvm-web: Node, Chromium and the built web/
# (crvm-bench skips it, saying why, without them).
if source scripts/ensure-node.sh && source scripts/ensure-chromium.sh; then
  (cd web && npm ci --no-audit --no-fund && npm run build) || echo "web/ not built: (l) will be skipped" >&2
fi
exec ./target/release/crvm-bench "$@"
