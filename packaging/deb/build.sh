#!/usr/bin/env bash
# Debian packages from a release `cmake --install` staged under STAGE (its usr/…), written to
# OUT, laid out as Debian lays out a library and its programs:
#   libcrvm0      the shared library (named after its SONAME), with shlibs and the ldconfig trigger
#   libcrvm-dev   headers, the .so link, the static library, pkg-config and CMake files
#   crvm-server   the server, its systemd unit and configuration, its system user
#   crvm          the command-line client
#   *-dbgsym      the debug symbols split off each, under /usr/lib/debug/.build-id
# Every package carries its copyright, changelog and md5sums; binaries are stripped.
# Usage: packaging/deb/build.sh STAGE OUT   (CRVM_DEB_MAINTAINER overrides the Maintainer)
set -euo pipefail
stage=$(cd "$1" && pwd)
mkdir -p "$2"
out=$(cd "$2" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -1)
arch=$(dpkg --print-architecture)
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
maintainer=${CRVM_DEB_MAINTAINER:-"crvm developers <crvm@example.org>"}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
umask 022

# A package's tree with its documentation files; prints its directory.
new_package() {
  local dir=$work/$1
  mkdir -p "$dir/DEBIAN" "$dir/usr/share/doc/$1"
  cp "$here/copyright" "$dir/usr/share/doc/$1/copyright"
  gzip -9n <"$here/changelog" >"$dir/usr/share/doc/$1/changelog.gz"
  echo "$dir"
}

# Installs STAGE's file $2 into package dir $1 (same path), mode $3.
take() {
  install -D -m "$3" "$stage/$2" "$1/$2"
}

# Splits the debug information of ELF file $2 (inside package dir $1) into the dbgsym package
# dir $3, as dh_strip does, then strips it ($4: "lib" for a shared library).
split_debug() {
  local file=$1/$2 id
  id=$(readelf -n "$file" | sed -n 's/^ *Build ID: //p')
  [ -n "$id" ] || { echo "$2 has no build ID" >&2; return 1; }
  local debug=$3/usr/lib/debug/.build-id/${id:0:2}/${id:2}.debug
  mkdir -p "$(dirname "$debug")"
  objcopy --only-keep-debug --compress-debug-sections "$file" "$debug"
  chmod 644 "$debug"
  if [ "$4" = lib ]; then
    strip --remove-section=.comment --remove-section=.note --strip-unneeded "$file"
  else
    strip --remove-section=.comment --remove-section=.note "$file"
  fi
  objcopy --add-gnu-debuglink="$debug" "$file"
}

# The shared-library dependencies of ELF files $@, for Depends.
shlib_depends() {
  local tmp=$work/shlibdeps
  mkdir -p "$tmp/debian"
  printf 'Source: crvm\n\nPackage: crvm\nArchitecture: any\n' >"$tmp/debian/control"
  (cd "$tmp" && dpkg-shlibdeps -O -S"$stage" "$@" 2>/dev/null) | sed -n 's/^shlibs:Depends=//p'
}

# Writes DEBIAN/control and DEBIAN/md5sums of package dir $1 and builds it. Fields after $1:
# name, section, depends, multi-arch ("" for none), synopsis, then the description's lines.
finish() {
  local dir=$1 name=$2 section=$3 depends=$4 multi=$5 synopsis=$6
  shift 6
  local size
  mkdir -p "$dir/DEBIAN"
  size=$(du -sk --exclude=DEBIAN "$dir" | cut -f1)
  {
    echo "Package: $name"
    echo "Source: crvm"
    echo "Version: $version"
    echo "Architecture: $arch"
    echo "Maintainer: $maintainer"
    echo "Installed-Size: $size"
    [ -n "$depends" ] && echo "Depends: $depends"
    [ -n "$multi" ] && echo "Multi-Arch: $multi"
    echo "Section: $section"
    echo "Priority: optional"
    echo "Description: $synopsis"
    for line in "$@"; do
      if [ -z "$line" ]; then echo " ."; else echo " $line"; fi
    done
  } >"$dir/DEBIAN/control"
  (cd "$dir" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | LC_ALL=C sort -z |
    xargs -0 md5sum) >"$dir/DEBIAN/md5sums"
  chmod 644 "$dir/DEBIAN/md5sums" "$dir/DEBIAN/control"
  dpkg-deb --root-owner-group -Zxz --build "$dir" "$out/${name}_${version}_${arch}.deb" >/dev/null
  echo "$out/${name}_${version}_${arch}.deb"
}

# Debug-symbol package for $1 (built from dbgsym dir $2).
finish_dbgsym() {
  local name=$1 dir=$2
  mkdir -p "$dir/usr/share/doc"
  ln -s "$name" "$dir/usr/share/doc/$name-dbgsym"
  finish "$dir" "$name-dbgsym" debug "$name (= $version)" "${3:-}" "debug symbols for $name" \
    "The detached debugging information of the $name package," \
    "for debuggers and crash reports."
}

about="crvm implements the CloudroomVideoMgr call-signalling API: login,"
about2="do-not-disturb, presence, meetings, one-to-one calls and point-to-point data."

# libcrvm0: the library and its SONAME link.
lib=$(new_package libcrvm0)
libdbg=$work/libcrvm0-dbgsym
real=$(basename "$(readlink -f "$stage/usr/lib/$ma/libcrvm.so.0")")
take "$lib" "usr/lib/$ma/$real" 644
ln -s "$real" "$lib/usr/lib/$ma/libcrvm.so.0"
split_debug "$lib" "usr/lib/$ma/$real" "$libdbg" lib
echo "libcrvm 0 libcrvm0 (>= $version)" >"$lib/DEBIAN/shlibs"
echo "activate-noawait ldconfig" >"$lib/DEBIAN/triggers"
chmod 644 "$lib/DEBIAN/shlibs" "$lib/DEBIAN/triggers"
finish "$lib" libcrvm0 libs "$(shlib_depends "$lib/usr/lib/$ma/$real")" same \
  "call-signalling client library (C ABI)" \
  "$about" "$about2" "" \
  "This package holds libcrvm, the client library for C and C++ apps."
finish_dbgsym libcrvm0 "$libdbg" same

# libcrvm-dev: what building an app needs.
dev=$(new_package libcrvm-dev)
ln -s "libcrvm.so.0" "$(mkdir -p "$dev/usr/lib/$ma" && echo "$dev/usr/lib/$ma")/libcrvm.so"
take "$dev" "usr/lib/$ma/libcrvm.a" 644
strip --strip-debug --remove-section=.comment --remove-section=.note \
  --enable-deterministic-archives "$dev/usr/lib/$ma/libcrvm.a"
take "$dev" "usr/lib/$ma/pkgconfig/crvm.pc" 644
for f in "$stage/usr/lib/$ma/cmake/crvm/"*; do
  take "$dev" "usr/lib/$ma/cmake/crvm/$(basename "$f")" 644
done
take "$dev" usr/include/crvm.h 644
take "$dev" usr/include/crvm.hpp 644
take "$dev" usr/include/crvm_values.hpp 644
finish "$dev" libcrvm-dev libdevel "libcrvm0 (= $version)" same \
  "call-signalling client library (development files)" \
  "$about" "$about2" "" \
  "This package holds the C header, the header-only C++ wrapper, the static" \
  "library, and the pkg-config and CMake package files for building apps."

# crvm-server: the server, run by systemd as the crvm system user.
srv=$(new_package crvm-server)
srvdbg=$work/crvm-server-dbgsym
take "$srv" usr/bin/crvm-server 755
split_debug "$srv" usr/bin/crvm-server "$srvdbg" bin
install -D -m 644 "$root/packaging/systemd/crvm-server.service" \
  "$srv/lib/systemd/system/crvm-server.service"
install -D -m 644 "$here/crvm.toml" "$srv/etc/crvm/crvm.toml"
echo /etc/crvm/crvm.toml >"$srv/DEBIAN/conffiles"
install -m 755 "$here/crvm-server.postinst" "$srv/DEBIAN/postinst"
chmod 644 "$srv/DEBIAN/conffiles"
mkdir -p "$srv/usr/share/man/man1"
"$stage/usr/bin/crvm-server" man | gzip -9n >"$srv/usr/share/man/man1/crvm-server.1.gz"
gzip -9nc "$root/docs/SERVER.md" >"$srv/usr/share/doc/crvm-server/SERVER.md.gz"
finish "$srv" crvm-server net "adduser, $(shlib_depends "$srv/usr/bin/crvm-server")" "" \
  "call-signalling server for libcrvm clients" \
  "$about" "$about2" "" \
  "This package holds the server, with SQLite storage on one machine or Redis" \
  "for a cluster of nodes, TLS, a Prometheus endpoint and an admin API, and" \
  "its hardened systemd unit."
finish_dbgsym crvm-server "$srvdbg"

# crvm: the command-line client.
cli=$(new_package crvm)
clidbg=$work/crvm-dbgsym
take "$cli" usr/bin/crvm 755
split_debug "$cli" usr/bin/crvm "$clidbg" bin
mkdir -p "$cli/usr/share/man/man1" "$cli/usr/share/bash-completion/completions"
"$stage/usr/bin/crvm" man | gzip -9n >"$cli/usr/share/man/man1/crvm.1.gz"
"$stage/usr/bin/crvm" completions bash >"$cli/usr/share/bash-completion/completions/crvm"
gzip -9nc "$root/docs/CLI.md" >"$cli/usr/share/doc/crvm/CLI.md.gz"
finish "$cli" crvm net "$(shlib_depends "$cli/usr/bin/crvm")" "" \
  "command-line client for crvm-server" \
  "$about" "$about2" "" \
  "This package holds crvm, a command-line client to log in, call, send cmds," \
  "buffers and files, and watch presence, for scripts and for trying a server."
finish_dbgsym crvm "$clidbg"
