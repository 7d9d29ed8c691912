#!/usr/bin/env bash
# Runs each fuzz target of the wire codec for a bounded time (default 15 s each; `scripts/fuzz.sh
# 600` for a long run). Uses the committed corpus as seeds without changing it; a crash leaves
# its input under fuzz/artifacts/ and fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-15}"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --quiet --locked cargo-fuzz@0.13.2
# cargo fuzz needs the sanitizer flags of a nightly compiler; the stable one has them behind
# this switch.
export RUSTC_BOOTSTRAP=1
for target in frames messages; do
  work="$(mktemp -d)"
  cargo fuzz run "$target" "$work" "fuzz/corpus/$target" -- \
    -max_total_time="$secs" -max_len=8192 -print_final_stats=1 2>&1 | tail -n 4
  rm -rf "$work"
done
