# Sourced by the project's scripts: makes sure `cmake` is on PATH (root on Debian: apt-get,
# else pip). Does nothing when cmake is already installed.
ensure_cmake() {
  command -v cmake >/dev/null 2>&1 && return 0
  echo "cmake not found; installing it" >&2
  if command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake >/dev/null \
      && command -v cmake >/dev/null 2>&1 && return 0
  fi
  python3 -m pip install --quiet cmake && hash -r
  command -v cmake >/dev/null 2>&1 || { echo "could not install cmake" >&2; return 1; }
}
ensure_cmake
