#!/usr/bin/env bash
# A Release configuration compiles every C and C++ file at -O3 (where gcc finds more warnings,
# e.g. -Wformat-truncation) with the developer option's -Werror. It links the cargo profile the
# calling build already has (CRVM_CARGO_PROFILE), so cargo has nothing to rebuild; a whole
# Release build and install, library included, is scripts/cmake-conventions.sh's.
# Usage: run.sh SOURCE_DIR BINARY_DIR CARGO_PROFILE
set -euo pipefail
src=$1
out=$2/release-build
profile=${3:-debug}
rm -rf "$out"
cmake -S "$src" -B "$out" -DCMAKE_BUILD_TYPE=Release -DCRVM_WERROR=ON \
  -DCRVM_CARGO_PROFILE="$profile" >/dev/null
cmake --build "$out" -j "$(nproc)"
echo "Release build: ok"
