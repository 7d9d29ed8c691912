#!/usr/bin/env bash
# The most common build line from a fresh clone must work: a Release configuration compiles
# every C and C++ file at -O2 (where gcc finds more warnings, e.g. -Wformat-truncation) with
# the project's -Werror. Usage: run.sh SOURCE_DIR BINARY_DIR
set -euo pipefail
src=$1
out=$2/release-build
rm -rf "$out"
cmake -S "$src" -B "$out" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$out" -j "$(nproc)"
echo "Release build: ok"
