# Sourced by scripts/web-test.sh and scripts/bench.sh: makes sure a Chromium that puppeteer-core
# can drive headless is there, from Debian's `chromium` package when it is not, and exports its
# path as CRVM_CHROMIUM. A CRVM_CHROMIUM already set to an executable is kept. Never downloads a
# browser from anywhere else.
source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"
ensure_chromium() {
  if [ -n "${CRVM_CHROMIUM:-}" ] && [ -x "$CRVM_CHROMIUM" ]; then
    export CRVM_CHROMIUM
    return 0
  fi
  local found
  found="$(command -v chromium || command -v chromium-browser || true)"
  if [ -z "$found" ]; then
    echo "Chromium not found; installing Debian's chromium" >&2
    apt_install chromium && found="$(command -v chromium || true)"
  fi
  if [ -z "$found" ]; then
    echo "could not install Chromium" >&2
    return 1
  fi
  export CRVM_CHROMIUM="$found"
}
ensure_chromium
