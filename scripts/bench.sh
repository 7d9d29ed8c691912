#!/usr/bin/env bash
# The full benchmark, crvm side by side with its anchors (socat, NATS, Redis), in one run:
# installs the anchors when missing, builds release, and runs crvm-bench with the given
# arguments (see `crvm-bench --help`; docs/PERFORMANCE.md).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-anchors.sh
cargo build --release -p crvm-bench -p crvm-server
exec ./target/release/crvm-bench "$@"
