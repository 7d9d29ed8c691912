# Sourced by scripts/test.sh: makes sure `python3 -m pytest` works (for the Python binding's
# tests under ctest). Does nothing when pytest is already installed.
ensure_pytest() {
  python3 -m pytest --version >/dev/null 2>&1 && return 0
  echo "pytest not found; installing it" >&2
  python3 -m pip install --quiet pytest && python3 -m pytest --version >/dev/null 2>&1 \
    && return 0
  # Distributions whose Python refuses pip installs (PEP 668): their own package.
  if command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pytest \
      >/dev/null && python3 -m pytest --version >/dev/null 2>&1 && return 0
  fi
  echo "could not install pytest" >&2
  return 1
}
ensure_pytest
