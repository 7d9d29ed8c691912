# Sourced by the benchmark scripts: installs the anchor servers the benchmarks compare crvm with
# (nats-server, redis-server, socat, iperf3) from Debian's packages when they are missing.
ensure_anchors() {
  local missing=()
  for tool in nats-server redis-server socat iperf3; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  echo "installing the benchmark anchors: ${missing[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  for tool in "${missing[@]}"; do
    command -v "$tool" >/dev/null 2>&1 || { echo "could not install $tool" >&2; return 1; }
  done
}
ensure_anchors
