#!/usr/bin/env bash
# Builds the .deb (cargo-deb over a release `cmake --install` staged under build-deb/stage),
# installs it with dpkg, starts the installed server, and builds and runs an app against the
# installed files (pkg-config and find_package); then removes the package again.
# Usage: scripts/deb.sh          (needs root for dpkg; installs cargo-deb when it is missing)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-cmake.sh
root=$PWD
# The release build shares scripts/cmake-conventions.sh's cargo output (CI runs both).
target=${CARGO_TARGET_DIR:-$root/target}
mkdir -p "$target"
export CARGO_TARGET_DIR
CARGO_TARGET_DIR=$(cd "$target" && pwd)/cmake-conventions
if ! cargo deb --version >/dev/null 2>&1; then
  cargo install cargo-deb --locked --quiet
fi
source scripts/apt.sh
for tool in dpkg-shlibdeps pkg-config; do
  command -v "$tool" >/dev/null || apt_install dpkg-dev pkg-config
done

# The release build and its install, staged as the package will lay it out.
rm -rf build-deb
cmake -S . -B build-deb -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
  -DBUILD_TESTING=OFF -DCRVM_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build-deb -j "$(nproc)" >/dev/null 2>&1
DESTDIR="$root/build-deb/stage" cmake --install build-deb >/dev/null
cargo deb -p crvm-server --no-build --fast --output build-deb/ >/dev/null
deb=$(ls build-deb/crvm_*.deb)
echo "built $deb"

tmp=$(mktemp -d)
cleanup() {
  [ -n "${server_pid:-}" ] && kill "$server_pid" 2>/dev/null || true
  dpkg --purge crvm >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
dpkg -i "$deb" >/dev/null
dpkg -L crvm | grep -q '^/usr/lib/x86_64-linux-gnu/libcrvm.so.0$'
[ -L /usr/lib/x86_64-linux-gnu/libcrvm.so.0 ] || { echo "libcrvm.so.0 is not a link" >&2; exit 1; }
[ -f /lib/systemd/system/crvm-server.service ] && [ -f /etc/crvm/crvm.toml ]

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
