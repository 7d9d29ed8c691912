"""The README examples run as pasted, against the test server.

Each snippet reads the server address from CRVM_ADDR (default 127.0.0.1:5210, the address of
`crvm-server --dev`); this test sets it to the test server's and runs the snippet in a fresh
interpreter with the package on PYTHONPATH and CRVM_LIB as for the other tests.
"""

import os
import re
import subprocess
import sys

import pytest

from conftest import REPO

PACKAGE_DIR = os.path.join(REPO, "bindings", "python")


def python_block_after(path, marker):
    """The first ```python block after the first line containing `marker`."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    start = text.find(marker)
    assert start >= 0, f"{marker!r} not found in {path}"
    m = re.compile(r"^```python\n(.*?)^```$", re.S | re.M).search(text, start)
    assert m, f"no python block after {marker!r} in {path}"
    return m.group(1)


@pytest.mark.parametrize("readme, marker, printed", [
    (os.path.join(REPO, "README.md"), "**Python.**", "b'\\x00any bytes'"),
    (os.path.join(PACKAGE_DIR, "README.md"), "## Example", "b'\\x00any bytes'"),
    (os.path.join(PACKAGE_DIR, "README.md"), "## asyncio", "b'hello from asyncio'"),
])
def test_readme_snippet_runs(server, readme, marker, printed):
    code = python_block_after(readme, marker)
    assert 'os.environ.get("CRVM_ADDR", "127.0.0.1:5210")' in code
    env = dict(os.environ, CRVM_ADDR=server.addr,
               PYTHONPATH=os.pathsep.join(filter(None, [PACKAGE_DIR,
                                                        os.environ.get("PYTHONPATH")])))
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert printed in r.stdout
