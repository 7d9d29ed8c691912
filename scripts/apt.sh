# Sourced by the ensure-*.sh scripts: `apt_install PKG...` installs Debian packages, running
# `apt-get update` at most once per shell. Fails (quietly) where there is no apt-get.
apt_install() {
  command -v apt-get >/dev/null 2>&1 || return 1
  if [ -z "${CRVM_APT_UPDATED:-}" ]; then
    apt-get update -qq || return 1
    export CRVM_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
