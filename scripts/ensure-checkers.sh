# Sourced by scripts/test.sh and scripts/deb.sh: the ecosystems' own checkers the tests run on
# what crvm ships — `promtool check metrics` (Debian's prometheus package) and Python's
# OpenMetrics parser (prometheus-client from PyPI, else Debian's) on `/metrics`, `lintian` on the .deb.
source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"
checker_present() {
  case "$1" in
    prometheus) command -v promtool >/dev/null 2>&1 ;;
    python3-prometheus-client) python3 -c 'import prometheus_client.openmetrics.parser' 2>/dev/null ;;
    *) command -v "$1" >/dev/null 2>&1 ;;
  esac
}
ensure_checkers() {
  local missing=()
  if ! checker_present python3-prometheus-client; then
    python3 -m pip install --quiet prometheus-client >/dev/null 2>&1 || true
  fi
  for pkg in prometheus python3-prometheus-client lintian; do
    checker_present "$pkg" || missing+=("$pkg")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  echo "installing the checkers: ${missing[*]}" >&2
  apt_install --no-install-recommends "${missing[@]}" || true
  for pkg in "${missing[@]}"; do
    checker_present "$pkg" || { echo "could not install $pkg" >&2; return 1; }
  done
}
ensure_checkers
