#!/usr/bin/env bash
# Installs the build into a temporary prefix, moves it (the install must be relocatable), then
# builds tests/install/app.c out of tree against the installed files both ways, pkg-config and
# find_package(crvm) (shared and static), and runs each against a test server.
# Usage: run.sh SOURCE_DIR BUILD_DIR RUN_WITH_SERVER
set -euo pipefail
src=$1 build=$2 run_with_server=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
ln -s "$build" build

# The README's commands, as written there.
PREFIX=$tmp/staged
cmake --install build --prefix "$PREFIX"
mv "$tmp/staged" "$tmp/prefix"
PREFIX=$tmp/prefix
cp "$src/tests/install/app.c" "$src/tests/install/CMakeLists.txt" .

echo "== pkg-config"
export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig"
cc app.c $(pkg-config --cflags --libs crvm) -Wl,-rpath,"$PREFIX/lib" -o app
readelf -d app | grep -q 'NEEDED.*\[libcrvm\.so\.0\]' || { echo "app does not need libcrvm.so.0" >&2; exit 1; }
"$run_with_server" "$tmp/app"

echo "== find_package(crvm)"
cmake -S . -B out -DCMAKE_PREFIX_PATH="$PREFIX" -DCMAKE_C_FLAGS="-Wall -Wextra -Werror" >/dev/null
cmake --build out >/dev/null
"$run_with_server" "$tmp/out/app"
"$run_with_server" "$tmp/out/app_static"
readelf -d out/app_static | grep -q 'libcrvm' && { echo "app_static needs libcrvm.so" >&2; exit 1; }
"$PREFIX/bin/crvm" --help >/dev/null
echo "installed crvm works from pkg-config and find_package"
