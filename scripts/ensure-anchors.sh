# Sourced by the benchmark scripts: installs the anchors the benchmarks compare crvm with
# (nats-server, redis-server, socat, iperf3, and for crvm-bench's (j) the C NATS client's
# headers, libnats-dev, with a C compiler) from Debian's packages when they are missing.
anchor_present() {
  case "$1" in
    libnats-dev) printf '#include <nats/nats.h>\n' | cc -E -x c - -o /dev/null >/dev/null 2>&1 ;;
    gcc) command -v cc >/dev/null 2>&1 ;;
    *) command -v "$1" >/dev/null 2>&1 ;;
  esac
}
ensure_anchors() {
  local missing=()
  # gcc before libnats-dev: the header check needs a compiler.
  for pkg in nats-server redis-server socat iperf3 gcc libnats-dev; do
    anchor_present "$pkg" || missing+=("$pkg")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  echo "installing the benchmark anchors: ${missing[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  for pkg in "${missing[@]}"; do
    anchor_present "$pkg" || { echo "could not install $pkg" >&2; return 1; }
  done
}
ensure_anchors
