#!/usr/bin/env bash
# Builds the C tests with AddressSanitizer, LeakSanitizer (part of ASan) and UBSan and runs the
# whole C suite under them: any memory error, leak or undefined behaviour fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-cmake.sh
source scripts/ensure-redis.sh
source scripts/ensure-pytest.sh
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCRVM_WERROR=ON -DCRVM_SANITIZE=ON > /dev/null
cmake --build build-asan -j "$(nproc)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -E '^test_release_build$' "$@"
