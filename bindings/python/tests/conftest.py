"""Fixtures: a real crvm-server (--dev, port 0, temp data dir) and logged-in clients.

The server binary is $CRVM_SERVER, else target/debug/crvm-server of this repository; the
library is $CRVM_LIB, else target/debug/libcrvm.so (set before crvm is first used).
"""

import itertools
import os
import subprocess
import threading

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
WAIT = 20.0  # seconds any single expected event may take

os.environ.setdefault("CRVM_LIB", os.path.join(REPO, "target", "debug", "libcrvm.so"))

import crvm  # noqa: E402  (after CRVM_LIB is set)

PREFIX = "crvm-server listening on "


class Server:
    def __init__(self, tmp_path_factory):
        path = os.environ.get("CRVM_SERVER") or os.path.join(REPO, "target", "debug",
                                                             "crvm-server")
        if not os.path.exists(path):
            pytest.fail(f"crvm-server not found at {path}: build it or set CRVM_SERVER")
        self.dir = tmp_path_factory.mktemp("server")
        self.log_path = self.dir / "server.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [path, "--dev", "--listen", "127.0.0.1:0", "--data-dir", str(self.dir / "data")],
            stdout=subprocess.PIPE, stderr=self._log, stdin=subprocess.DEVNULL)
        line = self._first_line()
        if not line.startswith(PREFIX):
            self.stop()
            pytest.fail(f"unexpected first server line {line!r}; see {self.log_path}")
        self.addr = line[len(PREFIX):]
        # Keep reading stdout so the server never blocks on a full pipe.
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def _first_line(self):
        box = []
        reader = threading.Thread(target=lambda: box.append(self.proc.stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(WAIT)
        if not box:
            self.stop()
            pytest.fail(f"crvm-server printed nothing in {WAIT} s; see {self.log_path}")
        return box[0].decode().strip()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    s = Server(tmp_path_factory)
    yield s
    s.stop()


_ids = itertools.count(1)


@pytest.fixture
def uid():
    """Fresh user IDs, so tests sharing the server never kick each other out."""
    return lambda name: f"{name}-{os.getpid()}-{next(_ids)}"


@pytest.fixture
def make_client(server):
    """make_client(**kwargs) -> a crvm.Client for the server, closed at teardown."""
    made = []

    def make(**kwargs):
        c = crvm.Client(server.addr, **kwargs)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture
def user(make_client, uid):
    """user(name, **client_kwargs) -> (client, user_id), logged in to tenant demo."""

    def login(name, **kwargs):
        c = make_client(**kwargs)
        user_id = uid(name)
        c.login("demo", "demo-secret", name, user_id, cookie="login")
        ev = c.next_event(("login_success", "login_fail"), timeout=WAIT)
        assert ev == crvm.Event("login_success", usr_id=user_id, cookie="login")
        return c, user_id

    return login
