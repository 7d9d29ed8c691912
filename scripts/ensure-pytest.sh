# Sourced by scripts/test.sh: makes sure `python3 -m pytest` works (for the Python binding's
# tests under ctest). Does nothing when pytest is already installed.
source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"
ensure_pytest() {
  python3 -m pytest --version >/dev/null 2>&1 && return 0
  echo "pytest not found; installing it" >&2
  python3 -m pip install --quiet pytest && python3 -m pytest --version >/dev/null 2>&1 \
    && return 0
  # Distributions whose Python refuses pip installs (PEP 668): their own package.
  apt_install python3-pytest && python3 -m pytest --version >/dev/null 2>&1 && return 0
  echo "could not install pytest" >&2
  return 1
}
ensure_pytest
