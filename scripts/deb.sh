#!/usr/bin/env bash
# Builds the Debian packages (packaging/deb/build.sh over a release `cmake --install` staged
# under build-deb/stage), checks them with lintian (no error, no warning), installs them with
# dpkg, starts the installed server, and builds and runs an app against the installed files
# (pkg-config and find_package); then purges them again.
# Usage: scripts/deb.sh          (needs root for dpkg; installs lintian when it is missing)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-cmake.sh
root=$PWD
# The release build shares scripts/cmake-conventions.sh's cargo output (CI runs both).
target=${CARGO_TARGET_DIR:-$root/target}
mkdir -p "$target"
export CARGO_TARGET_DIR
CARGO_TARGET_DIR=$(cd "$target" && pwd)/cmake-conventions
source scripts/apt.sh
for tool in dpkg-shlibdeps pkg-config; do
  command -v "$tool" >/dev/null || apt_install dpkg-dev pkg-config
done
source scripts/ensure-checkers.sh

# The release build and its install, staged as the package will lay it out.
rm -rf build-deb
cmake -S . -B build-deb -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
  -DBUILD_TESTING=OFF -DCRVM_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build-deb -j "$(nproc)" >/dev/null 2>&1
DESTDIR="$root/build-deb/stage" cmake --install build-deb >/dev/null
packaging/deb/build.sh build-deb/stage build-deb/debs
# Debian's own checker: no error and no warning (informational tags only).
lintian_ok=0
lintian --fail-on error,warning build-deb/debs/*.deb >build-deb/lintian.txt 2>&1 || lintian_ok=$?
grep -v 'root privileges' build-deb/lintian.txt || true
[ "$lintian_ok" = 0 ] || { echo "lintian found errors or warnings" >&2; exit 1; }
echo "lintian: no error, no warning"
packages=(libcrvm0 libcrvm-dev crvm-server crvm)

tmp=$(mktemp -d)
cleanup() {
  [ -n "${server_pid:-}" ] && kill "$server_pid" 2>/dev/null || true
  dpkg --purge "${packages[@]}" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
dpkg -i $(for p in "${packages[@]}"; do echo build-deb/debs/${p}_*.deb; done) >/dev/null
dpkg -L libcrvm0 | grep -q '^/usr/lib/x86_64-linux-gnu/libcrvm.so.0$'
[ -L /usr/lib/x86_64-linux-gnu/libcrvm.so.0 ] || { echo "libcrvm.so.0 is not a link" >&2; exit 1; }
dpkg -L libcrvm-dev | grep -q '^/usr/include/crvm.h$'
[ -f /lib/systemd/system/crvm-server.service ] && [ -f /etc/crvm/crvm.toml ]
# The service's user exists and the configuration (tenant secrets) is not world-readable.
getent passwd crvm >/dev/null || { echo "no crvm user" >&2; exit 1; }
[ "$(stat -c %a:%G /etc/crvm/crvm.toml)" = 640:crvm ] || {
  echo "/etc/crvm/crvm.toml: $(stat -c %a:%G /etc/crvm/crvm.toml)" >&2
  exit 1
}
# Stripped, with the debug symbols in their own package.
for f in /usr/bin/crvm-server /usr/bin/crvm /usr/lib/x86_64-linux-gnu/libcrvm.so.0; do
  ! readelf -S "$f" | grep -q '\.debug_info' || { echo "$f is not stripped" >&2; exit 1; }
done
[ -f /usr/share/man/man1/crvm-server.1.gz ] && [ -f /usr/share/man/man1/crvm.1.gz ]

# The installed server, on a free port, with the dev tenant.
/usr/bin/crvm-server --dev --listen 127.0.0.1:0 --data-dir "$tmp/data" >"$tmp/server.out" 2>"$tmp/log" &
server_pid=$!
for _ in $(seq 100); do
  grep -q '^crvm-server listening on ' "$tmp/server.out" 2>/dev/null && break
  sleep 0.05
done
addr=$(sed -n 's/^crvm-server listening on //p' "$tmp/server.out")
[ -n "$addr" ] || { echo "the installed server did not start:" >&2; cat "$tmp/log" >&2; exit 1; }
/usr/bin/crvm --server "$addr" --app-id demo --secret demo-secret --user cli login | grep -q 'logged in as cli'

# An app against the installed files, both ways.
cp tests/install/app.c tests/install/CMakeLists.txt "$tmp/"
cd "$tmp"
cc app.c $(pkg-config --cflags --libs crvm) -o app_pc
./app_pc "$addr" | grep -q 'logged in as alice'
cmake -S . -B out >/dev/null
cmake --build out >/dev/null
./out/app "$addr" | grep -q 'logged in as alice'
./out/app_static "$addr" | grep -q 'logged in as alice'
echo "the .deb installs, its server serves, apps build against it (pkg-config, find_package)"
