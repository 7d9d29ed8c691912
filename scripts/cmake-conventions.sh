#!/usr/bin/env bash
# CMake as a user runs it (docs/DESIGN.md "Build options"), on a clean clone of HEAD (committed
# files only) in a temporary directory:
#   (a) a Release build and install, then a tiny app built against the installed files with
#       find_package(crvm) (shared and static) and with pkg-config, and run;
#   (b) BUILD_TESTING=OFF builds no test program and registers no test (and with
#       CRVM_BUILD_EXAMPLES=OFF too, no program at all); no CMAKE_BUILD_TYPE means Release;
#   (c) configuring without python3 works (its tests are left out), and each build type picks
#       its cargo profile.
# cargo builds into $CARGO_TARGET_DIR/cmake-conventions (default target/cmake-conventions), kept
# between runs, so a later run rebuilds only the workspace's own crates.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-cmake.sh
repo=$PWD
target=${CARGO_TARGET_DIR:-$repo/target}
mkdir -p "$target"
export CARGO_TARGET_DIR
CARGO_TARGET_DIR=$(cd "$target" && pwd)/cmake-conventions
unset CMAKE_BUILD_TYPE CMAKE_GENERATOR # the defaults, as a user gets them

tmp=$(mktemp -d "${TMPDIR:-/tmp}/crvm-cmake-conventions-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() {
  echo "cmake-conventions: $*" >&2
  exit 1
}
[[ -z $(git status --porcelain --untracked-files=no) ]] || echo "cmake-conventions: uncommitted changes are not in the clone it tests" >&2
git clone -q "$repo" "$tmp/src"
cd "$tmp/src"
echo "== clean clone of $(git log -1 --format='%h %s' | cut -c1-80)"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
major=${version%%.*}

echo "== (a) Release build and install"
PREFIX=$tmp/prefix
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$(nproc)"
cmake --install build --prefix "$PREFIX"

lib=$PREFIX/lib
for f in "$lib/libcrvm.so.$version" "$lib/libcrvm.a" "$PREFIX/include/crvm.h" \
  "$PREFIX/include/crvm.hpp" "$PREFIX/include/crvm_values.hpp" "$lib/pkgconfig/crvm.pc" "$lib/cmake/crvm/crvmConfig.cmake" \
  "$lib/cmake/crvm/crvmConfigVersion.cmake" "$PREFIX/bin/crvm-server" "$PREFIX/bin/crvm"; do
  [[ -f $f ]] || fail "not installed: $f"
done
[[ $(readlink "$lib/libcrvm.so.$major") == "libcrvm.so.$version" ]] || fail "libcrvm.so.$major is not a link to libcrvm.so.$version"
[[ $(readlink "$lib/libcrvm.so") == "libcrvm.so.$major" ]] || fail "libcrvm.so is not a link to libcrvm.so.$major"
readelf -d "$lib/libcrvm.so.$version" | grep -q "SONAME.*\[libcrvm\.so\.$major\]" || fail "no SONAME libcrvm.so.$major"
# The installed library is cargo's --release build.
cmp -s "$lib/libcrvm.so.$version" "$CARGO_TARGET_DIR/release/libcrvm.so" || fail "the installed libcrvm.so is not target/release's"
"$PREFIX/bin/crvm" --help >/dev/null

mkdir "$tmp/app"
cd "$tmp/app"
cat >app.c <<'EOF'
#include <stdio.h>

#include "crvm.h"

int main(void) {
  printf("libcrvm %s\n", crvm_version());
  return 0;
}
EOF
# The consumer project of tests/install (find_package(crvm): shared and static).
cp "$tmp/src/tests/install/CMakeLists.txt" .
expect="libcrvm $version"
cmake -S . -B out -DCMAKE_PREFIX_PATH="$PREFIX" -DCMAKE_C_FLAGS="-Wall -Wextra -Werror" >/dev/null
cmake --build out >/dev/null
[[ $(out/app) == "$expect" ]] || fail "find_package app printed '$(out/app)', not '$expect'"
ldd out/app | grep -q "libcrvm\.so\.$major => $lib/libcrvm\.so\.$major" || fail "the find_package app does not load $lib/libcrvm.so.$major"
[[ $(out/app_static) == "$expect" ]] || fail "the static app printed '$(out/app_static)'"
readelf -d out/app_static | grep -q libcrvm && fail "app_static needs libcrvm.so"
echo "find_package(crvm): $(out/app) (shared and static)"

export PKG_CONFIG_PATH="$lib/pkgconfig"
[[ $(pkg-config --modversion crvm) == "$version" ]] || fail "pkg-config --modversion crvm is not $version"
cc app.c $(pkg-config --cflags --libs crvm) -Wl,-rpath,"$lib" -o app
readelf -d app | grep -q "NEEDED.*\[libcrvm\.so\.$major\]" || fail "the pkg-config app does not need libcrvm.so.$major"
[[ $(./app) == "$expect" ]] || fail "pkg-config app printed '$(./app)', not '$expect'"
echo "pkg-config crvm: $(./app)"
cd "$tmp/src"

echo "== (b) BUILD_TESTING=OFF, no CMAKE_BUILD_TYPE"
# Files the build made, outside CMake's own CMakeFiles (its compiler checks): executables, and
# static libraries (the test harness is one).
built() {
  find "$1" -path '*/CMakeFiles' -prune -o -type f \( -perm -u+x -o -name '*.a' \) -printf '%f\n' | LC_ALL=C sort | tr '\n' ' '
}
cmake -S . -B build-notest -DBUILD_TESTING=OFF | tee "$tmp/notest.log"
grep -q '^CMAKE_BUILD_TYPE:STRING=Release$' build-notest/CMakeCache.txt || fail "no CMAKE_BUILD_TYPE did not default to Release"
cmake --build build-notest -j "$(nproc)" | tee -a "$tmp/notest.log"
grep -q 'crvm-faultproxy' "$tmp/notest.log" && fail "BUILD_TESTING=OFF built the test fault proxy"
[[ $(built build-notest) == "call call_cpp demo file_cpp hello_cpp quickstart " ]] || fail "BUILD_TESTING=OFF built: $(built build-notest)"
ctest --test-dir build-notest -N | grep -q '^Total Tests: 0$' || fail "BUILD_TESTING=OFF registered tests: $(ctest --test-dir build-notest -N)"
echo "BUILD_TESTING=OFF built only the examples: $(built build-notest)"
cmake -S . -B build-bare -DBUILD_TESTING=OFF -DCRVM_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build-bare -j "$(nproc)" >/dev/null
[[ -z $(built build-bare) ]] || fail "BUILD_TESTING=OFF CRVM_BUILD_EXAMPLES=OFF built: $(built build-bare)"
cmake --install build-bare --prefix "$tmp/prefix-bare" >/dev/null
cmp -s "$tmp/prefix-bare/lib/libcrvm.so.$version" "$lib/libcrvm.so.$version" || fail "the bare build installed another library"
echo "BUILD_TESTING=OFF CRVM_BUILD_EXAMPLES=OFF built no program, and installs"

echo "== (c) configure without python3"
# Every python, python3 and python3.N on PATH and in the system directories is hidden (a
# non-executable /dev/null mounted over it, in a mount namespace of this command only); where
# that is not allowed (no user namespaces, or a cmake that is itself a Python script), CMake is
# told instead that Python3 is not to be found.
# shellcheck disable=SC2016
hide='for d in ${PATH//:/ } /usr/local/bin /usr/bin /bin; do
  for f in "$d"/python "$d"/python3 "$d"/python3.[0-9]*; do
    if [[ -x $f && ! -d $f ]]; then mount --bind /dev/null "$f"; fi
  done
done
if python3 -c "" 2>/dev/null; then echo "python3 still runs" >&2; exit 1; fi
exec "$@"'
nopy=(-DCMAKE_DISABLE_FIND_PACKAGE_Python3=ON)
how="CMAKE_DISABLE_FIND_PACKAGE_Python3=ON"
if unshare -rm bash -c "$hide" hide true 2>/dev/null \
  && [[ $(head -c2 "$(readlink -f "$(command -v cmake)")") != '#!' ]]; then
  nopy=()
  how="python3 hidden from PATH and the system directories"
fi
if ((${#nopy[@]})); then
  cmake -S . -B build-nopy "${nopy[@]}" | tee "$tmp/nopy.log"
else
  # -Wno-dev: under the project's 3.16 policies (CMP0109 unset), find_program takes a readable,
  # non-executable file for a program and warns about it; FindPython then cannot run it.
  unshare -rm bash -c "$hide" hide cmake -S . -B build-nopy -Wno-dev | tee "$tmp/nopy.log"
fi
grep -q "python3 not found: the Python binding's tests (python_binding) are left out" "$tmp/nopy.log" || fail "no message that the Python tests are left out"
tests=$(ctest --test-dir build-nopy -N)
grep -Eq ' (python_binding|test_readme)$' <<<"$tests" && fail "Python tests registered without python3"
grep -q ' test_api$' <<<"$tests" || fail "the C tests are missing without python3"
echo "configured without python3 ($how): $(grep '^Total Tests' <<<"$tests"), none of them Python's"

for t in Debug:debug Release:release RelWithDebInfo:release MinSizeRel:release; do
  cmake -S . -B build-types -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE="${t%:*}" >"$tmp/types.log"
  grep -q "^-- crvm: cargo profile ${t#*:} (CMAKE_BUILD_TYPE ${t%:*}," "$tmp/types.log" || fail "CMAKE_BUILD_TYPE=${t%:*} does not build cargo's ${t#*:} profile"
done
cmake -S . -B build-types -DCMAKE_BUILD_TYPE=Debug -DCRVM_CARGO_PROFILE=release >"$tmp/types.log"
grep -q "^-- crvm: cargo profile release (CMAKE_BUILD_TYPE Debug," "$tmp/types.log" || fail "CRVM_CARGO_PROFILE does not override the build type"
echo "build types: Debug -> cargo debug; Release, RelWithDebInfo, MinSizeRel -> cargo --release; CRVM_CARGO_PROFILE overrides"
echo "cmake-conventions: ok"
