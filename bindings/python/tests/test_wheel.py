"""The wheel: built as scripts/wheel.sh builds it (setup.py runs cargo and strips the library,
then auditwheel repairs it), tagged manylinux, carrying a stripped libcrvm.so and py.typed, and
working in a fresh venv without CRVM_LIB.

So as not to build the library again, the build step is pointed at the cargo output the rest
of the suite runs against: CRVM_LIB is <target dir>/<profile>/libcrvm.so, so cargo is run
with that CARGO_TARGET_DIR and profile, and with CRVM_CARGO_ARGS=--workspace: `-p crvm` alone
resolves some dependencies' features differently from the `cargo build --workspace` that made
CRVM_LIB and would compile a second variant of the crate (minutes on two cores); the
workspace's selection finds everything up to date. (If CRVM_LIB is not in such a place, the
build step builds the release library in the repository's target dir.)

pip builds the wheel with build isolation, so it fetches setuptools from the package index
(or pip's cache). Skipped where this Python has no pip or no venv/ensurepip.
"""

import importlib.util
import os
import platform
import re
import subprocess
import sys
import sysconfig
import zipfile

import pytest

import crvm
from conftest import REPO

PACKAGE_DIR = os.path.join(REPO, "bindings", "python")

pytestmark = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("pip", "venv", "ensurepip")),
    reason="needs pip, venv and ensurepip in this Python")


def _clean_env(**extra):
    """This environment without what would let the package find a library other than its
    own (CRVM_LIB, PYTHONPATH), plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("CRVM_LIB", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(extra)
    return env


def _cargo_settings():
    """CARGO_TARGET_DIR and CRVM_CARGO_PROFILE of the library the suite uses, if it is a
    cargo output (<target>/<profile>/libcrvm.so in a target dir cargo made)."""
    lib = os.path.abspath(os.environ["CRVM_LIB"])
    profile_dir = os.path.dirname(lib)
    target = os.path.dirname(profile_dir)
    if (os.path.basename(lib) == "libcrvm.so" and os.path.isfile(lib)
            and os.path.isfile(os.path.join(target, "CACHEDIR.TAG"))):
        return {"CARGO_TARGET_DIR": target,
                "CRVM_CARGO_PROFILE": os.path.basename(profile_dir),
                "CRVM_CARGO_ARGS": "--workspace"}
    return {}


def _run(cmd, timeout, **kwargs):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert r.returncode == 0, f"{cmd} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r


def test_the_wheel_carries_the_library_and_runs_in_a_fresh_venv(tmp_path):
    dist = tmp_path / "dist"
    _run([os.path.join(REPO, "scripts", "wheel.sh"), str(dist)], timeout=300,
         env=_clean_env(**_cargo_settings()))
    wheels = sorted(p.name for p in dist.glob("*.whl"))
    assert len(wheels) == 1, wheels
    wheel = wheels[0]

    # crvm-0.1.0-py3-none-manylinux_2_34_x86_64.whl: any Python 3, any Linux of this machine's
    # architecture with a glibc at least as new as the library needs (auditwheel's verdict).
    python_tag, abi_tag, platform_tag = wheel[:-len(".whl")].split("-")[-3:]
    assert (python_tag, abi_tag) == ("py3", "none")
    assert re.fullmatch(r"manylinux_2_\d+_" + platform.machine(), platform_tag), platform_tag
    assert sysconfig.get_platform().startswith("linux")

    with zipfile.ZipFile(dist / wheel) as zf:
        names = set(zf.namelist())
        assert {"crvm/libcrvm.so", "crvm/py.typed", "crvm/__init__.py"} <= names
        meta = next(n for n in names if n.endswith(".dist-info/WHEEL"))
        assert "Root-Is-Purelib: false" in zf.read(meta).decode()
        # Stored executable, as shared libraries are installed.
        assert (zf.getinfo("crvm/libcrvm.so").external_attr >> 16) & 0o111
        zf.extract("crvm/libcrvm.so", str(tmp_path / "unpacked"))
    # Stripped: no symbol table or debug information, the C functions still exported.
    lib = str(tmp_path / "unpacked" / "crvm" / "libcrvm.so")
    sections = _run(["readelf", "-S", "-W", lib], timeout=60).stdout
    assert ".symtab" not in sections and ".debug_info" not in sections, sections
    assert "crvm_create" in _run(["readelf", "--dyn-syms", "-W", lib], timeout=60).stdout
    # The build step wrote nothing into the source package (where a stale copy would shadow
    # CRVM_LIB-less loading from the source tree).
    assert not os.path.exists(os.path.join(PACKAGE_DIR, "crvm", "libcrvm.so"))

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], timeout=120, env=_clean_env())
    python = str(venv / "bin" / "python")
    _run([python, "-m", "pip", "install", "--no-index", "--no-deps",
          "--disable-pip-version-check", str(dist / wheel)], timeout=120, env=_clean_env())

    # A fresh interpreter away from the source tree, with no CRVM_LIB: the bundled library.
    probe = ("import crvm, crvm._lib, sys\n"
             "print(crvm.version())\n"
             "print(crvm._lib.lib()._name)\n"
             "print(crvm.__file__)\n"
             "print(crvm.err_str(crvm.CRVIDEOSDK_NOT_LOGIN))\n")
    out = _run([python, "-I", "-c", probe], timeout=60, cwd=str(tmp_path),
               env=_clean_env()).stdout.splitlines()
    version, loaded, package, text = out
    assert version == crvm.version()
    assert loaded == os.path.join(os.path.dirname(package), "libcrvm.so")
    assert os.path.realpath(package).startswith(os.path.realpath(str(venv)) + os.sep)
    assert text == "not logged in"
