#!/usr/bin/env bash
# The demo on a cluster (docs/CLUSTER.md): builds everything with CMake into ./build, starts a
# redis-server of its own (on a Unix socket in a throwaway directory, nothing on disk) and three
# crvm-server nodes sharing it, then runs c_examples/demo with alice on node n1 and bob on node
# n2 — presence, meetings, the call and every transfer cross nodes. Stops everything and exits
# with the demo's status.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-cmake.sh
source scripts/ensure-redis.sh

cmake -S . -B build -DCMAKE_BUILD_TYPE=Debug
cmake --build build -j "$(nproc)"

dir=$(mktemp -d "${TMPDIR:-/tmp}/crvm-cluster-demo-XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$dir"
}
trap cleanup EXIT

redis-server --port 0 --unixsocket "$dir/redis.sock" --save "" --appendonly no --dir "$dir" \
  >"$dir/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  grep -qi "ready to accept connections" "$dir/redis.log" && break
  sleep 0.1
done
grep -qi "ready to accept connections" "$dir/redis.log" || { cat "$dir/redis.log" >&2; exit 1; }
echo "redis-server is ready on $dir/redis.sock"

addrs=()
for n in 1 2 3; do
  cat >"$dir/n$n.toml" <<TOML
listen = "127.0.0.1:0"
data_dir = "$dir/data-n$n"

[cluster]
redis = "unix://$dir/redis.sock"
node_id = "n$n"

[[tenant]]
app_id = "demo"
secret = "demo-secret"
TOML
  exec {fd}< <(exec target/debug/crvm-server --config "$dir/n$n.toml" 2>"$dir/n$n.log")
  pids+=($!)
  if ! read -r -t 30 first_line <&$fd || [[ "$first_line" != "crvm-server listening on "* ]]; then
    echo "node n$n did not start: ${first_line:-no output}" >&2
    cat "$dir/n$n.log" >&2 || true
    exit 1
  fi
  cat <&$fd >/dev/null & # keep draining stdout
  addrs+=("${first_line#crvm-server listening on }")
  for _ in $(seq 100); do
    grep -q "joined" "$dir/n$n.log" && break
    sleep 0.1
  done
  grep -q "joined" "$dir/n$n.log" || { cat "$dir/n$n.log" >&2; exit 1; }
  echo "node n$n serves on ${addrs[-1]}"
done

status=0
build/c_examples/demo "${addrs[0]}" "${addrs[1]}" || status=$?
exit "$status"
