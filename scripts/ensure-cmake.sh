# Sourced by the project's scripts: makes sure `cmake` is on PATH (root on Debian: apt-get,
# else pip). Does nothing when cmake is already installed.
source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"
ensure_cmake() {
  command -v cmake >/dev/null 2>&1 && return 0
  echo "cmake not found; installing it" >&2
  apt_install cmake && command -v cmake >/dev/null 2>&1 && return 0
  python3 -m pip install --quiet cmake && hash -r
  command -v cmake >/dev/null 2>&1 || { echo "could not install cmake" >&2; return 1; }
}
ensure_cmake
