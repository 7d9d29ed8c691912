# Sourced by scripts/web-test.sh: makes sure Node.js (18 or later, for its test runner) and npm
# are there, from Debian's packages when they are not. Does nothing when they already are.
source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"
ensure_node() {
  if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 &&
    [ "$(node -p 'process.versions.node.split(".")[0]')" -ge 18 ]; then
    return 0
  fi
  echo "Node.js 18+ or npm not found; installing Debian's nodejs and npm" >&2
  apt_install nodejs npm && command -v npm >/dev/null 2>&1 && return 0
  echo "could not install Node.js and npm" >&2
  return 1
}
ensure_node
