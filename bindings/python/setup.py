"""The build step of the crvm wheel: builds libcrvm.so with cargo and puts it in the package.

The metadata is in pyproject.toml; this file only adds two commands:

- ``build_py`` also runs ``cargo build --release -p crvm --lib`` in the repository this
  directory belongs to (``../..``) and copies the resulting ``libcrvm.so`` into the built
  package (``crvm/libcrvm.so``), where the loader looks first when ``CRVM_LIB`` is not set. It
  never writes into the source tree. The copy is stripped (``strip --strip-unneeded``).
- ``bdist_wheel`` tags the wheel ``py3-none-<platform>`` (e.g. ``py3-none-linux_x86_64``): any
  Python 3 (the package is ctypes, there is no extension module and no ABI dependency), but
  only the platform the library was built for. ``scripts/wheel.sh`` then runs ``auditwheel
  repair``, which gives it its manylinux tag.

Environment:

- ``CARGO_TARGET_DIR``, ``CARGO_BUILD_JOBS`` and the rest of cargo's own settings apply as
  usual (an already-built library is reused, not rebuilt); ``CARGO`` names the cargo binary.
- ``CRVM_CARGO_PROFILE``: the cargo profile to build (default ``release``; ``debug``/``dev``
  or any custom profile).
- ``CRVM_CARGO_ARGS``: more arguments for that ``cargo build`` (split like a shell would),
  e.g. ``--locked --offline``, or ``--workspace`` to resolve dependency features as a
  workspace build does and so reuse its library where ``-p crvm`` alone would compile a
  second variant.
- ``CRVM_PREBUILT_LIB``: the path of a ``libcrvm.so`` built beforehand: it is copied as is and
  cargo is not run (for a wheel built away from the repository, e.g. from an sdist).
"""

import json
import os
import shlex
import shutil
import subprocess
import sys

from setuptools import setup
from setuptools.command.build_py import build_py as _build_py
from setuptools.dist import Distribution

try:  # setuptools >= 70.1 has bdist_wheel itself
    from setuptools.command.bdist_wheel import bdist_wheel as _bdist_wheel
except ImportError:  # older setuptools, with the wheel package
    from wheel.bdist_wheel import bdist_wheel as _bdist_wheel

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
LIB_NAME = "libcrvm.so"


def _cargo():
    cargo = os.environ.get("CARGO") or shutil.which("cargo")
    if not cargo:
        home = os.path.join(os.path.expanduser("~"), ".cargo", "bin", "cargo")
        cargo = home if os.path.exists(home) else None
    if not cargo:
        sys.exit("crvm: cargo not found (install Rust, or set CARGO or CRVM_PREBUILT_LIB)")
    return cargo


def build_library():
    """Builds libcrvm.so with cargo (or takes CRVM_PREBUILT_LIB) and returns its path."""
    prebuilt = os.environ.get("CRVM_PREBUILT_LIB")
    if prebuilt:
        if not os.path.isfile(prebuilt):
            sys.exit(f"crvm: CRVM_PREBUILT_LIB={prebuilt} is not a file")
        return prebuilt
    manifest = os.path.join(REPO, "Cargo.toml")
    if not os.path.isfile(manifest):
        sys.exit(f"crvm: the Rust sources are not at {REPO} (building from a copy of "
                 "bindings/python, e.g. an sdist?): build the wheel from the repository, "
                 "or set CRVM_PREBUILT_LIB to a built libcrvm.so")
    profile = os.environ.get("CRVM_CARGO_PROFILE", "release")
    cmd = [_cargo(), "build", "--manifest-path", manifest, "-p", "crvm", "--lib",
           "--message-format=json-render-diagnostics"]
    if profile == "release":
        cmd.append("--release")
    elif profile not in ("debug", "dev"):
        cmd += ["--profile", profile]
    cmd += shlex.split(os.environ.get("CRVM_CARGO_ARGS", ""))
    print("crvm: " + " ".join(cmd), file=sys.stderr, flush=True)
    # Cargo's progress and diagnostics go to stderr; its JSON messages, read here, to stdout.
    proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, check=False)
    if proc.returncode != 0:
        sys.exit(f"crvm: cargo build failed ({proc.returncode})")
    found = None
    for line in proc.stdout.decode("utf-8", "replace").splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if msg.get("reason") != "compiler-artifact" or msg["target"]["name"] != "crvm":
            continue
        if "cdylib" not in msg["target"]["kind"]:
            continue
        found = next((f for f in msg["filenames"] if os.path.basename(f) == LIB_NAME), found)
    if not found:
        sys.exit(f"crvm: cargo built no {LIB_NAME}")
    return found


def strip_library(path):
    """Strips the symbols a debugger would use from ``path`` (what a wheel ships: a release
    libcrvm.so is ~20 MB with them, ~3 MB without); the exported C functions stay.
    ``STRIP`` names the strip program; without one, the wheel keeps them and says so."""
    strip = os.environ.get("STRIP") or shutil.which("strip")
    if not strip:
        print("crvm: no strip program: the wheel's library keeps its symbols",
              file=sys.stderr, flush=True)
        return
    subprocess.run([strip, "--strip-unneeded", "--remove-section=.comment", path], check=True)


class build_py(_build_py):
    """Builds the Python files as usual, plus crvm/libcrvm.so from cargo."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            # An editable install runs from the source tree, which is never written to: it
            # finds the library through CRVM_LIB (or the system's search).
            return
        lib = build_library()
        dest = os.path.join(self.build_lib, "crvm", LIB_NAME)
        self.mkpath(os.path.dirname(dest))
        # A plain copy of the file (not of the libcrvm.so.0 link beside it): the loader opens
        # it by path, so the SONAME link is not needed.
        shutil.copyfile(lib, dest)
        os.chmod(dest, 0o755)
        strip_library(dest)

    def get_outputs(self, include_bytecode=True):
        outputs = super().get_outputs(include_bytecode)
        if not getattr(self, "editable_mode", False):
            outputs.append(os.path.join(self.build_lib, "crvm", LIB_NAME))
        return outputs


class bdist_wheel(_bdist_wheel):
    """A platform wheel (it carries a native library) for any Python 3: py3-none-<platform>."""

    def finalize_options(self):
        super().finalize_options()
        self.root_is_pure = False

    def get_tag(self):
        _, _, plat = super().get_tag()
        return "py3", "none", plat


class BinaryDistribution(Distribution):
    """Installed into platlib, like any package with native code."""

    def has_ext_modules(self):
        return True


setup(cmdclass={"build_py": build_py, "bdist_wheel": bdist_wheel},
      distclass=BinaryDistribution)
