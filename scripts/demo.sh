#!/usr/bin/env bash
# The README demo from a fresh checkout: builds everything with CMake into ./build, starts
# `crvm-server --dev` on a free port with a throwaway data dir, runs c_examples/demo against
# it, stops the server, and exits with the demo's status.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-cmake.sh

cmake -S . -B build -DCMAKE_BUILD_TYPE=Debug
cmake --build build -j "$(nproc)"

data_dir=$(mktemp -d "${TMPDIR:-/tmp}/crvm-demo-XXXXXX")
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$data_dir"
}
trap cleanup EXIT

# The server's first stdout line is "crvm-server listening on HOST:PORT".
exec 3< <(exec target/debug/crvm-server --dev --listen 127.0.0.1:0 --data-dir "$data_dir" \
  2>"$data_dir/server.log")
server_pid=$!
if ! read -r -t 30 first_line <&3 || [[ "$first_line" != "crvm-server listening on "* ]]; then
  echo "crvm-server did not start: ${first_line:-no output}" >&2
  cat "$data_dir/server.log" >&2 || true
  exit 1
fi
cat <&3 >/dev/null & # keep draining stdout
addr=${first_line#crvm-server listening on }
echo "crvm-server --dev is listening on $addr"

status=0
build/c_examples/demo "$addr" || status=$?
exit "$status"
