#!/usr/bin/env bash
# Runs every test: the Rust workspace's, the web client's (Node), then the C, C++ and Python tests through CMake and
# ctest (whose summary is the last thing printed).
# Usage: scripts/test.sh [extra ctest args, e.g. -j2]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-cmake.sh
source scripts/ensure-pytest.sh
source scripts/ensure-redis.sh
source scripts/ensure-checkers.sh

cargo test --workspace
scripts/web-test.sh # the web client's tests under Node, against the server just built
cmake -S . -B build -DCMAKE_BUILD_TYPE=Debug -DCRVM_WERROR=ON
cmake --build build -j "$(nproc)"
ctest --test-dir build --output-on-failure "$@"
