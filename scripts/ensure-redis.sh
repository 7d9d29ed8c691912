# Sourced by scripts/test.sh: makes sure `redis-server` and `redis-cli` (Redis 7, Debian's
# package) are on PATH for the cluster tests, which start their own on a Unix socket (and, for
# the Sentinel test, a primary, a replica and three sentinels on loopback: `redis-server
# --sentinel` is the same binary).
source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"
ensure_redis() {
  command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 && return 0
  echo "redis-server not found; installing it" >&2
  apt_install redis-server && command -v redis-server >/dev/null 2>&1 && return 0
  echo "could not install redis-server" >&2
  return 1
}
ensure_redis
