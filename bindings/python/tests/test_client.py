"""Login, synchronous refusals, presence, meetings, handlers, manual dispatch, lifetime."""

import json
import logging
import os
import subprocess
import sys
import threading

import pytest

import crvm
from conftest import WAIT


def test_version_err_str_and_codes():
    assert crvm.version().count(".") == 2
    assert crvm.err_str(crvm.CRVIDEOSDK_NOT_LOGIN) == "not logged in"
    assert crvm.err_str(123456) == "unknown error code"
    e = crvm.Error(12)
    assert isinstance(e, crvm.NotLoggedIn) and e.code == 12 and str(e) == "not logged in (12)"
    assert type(crvm.Error(600)) is crvm.Error


def test_codes_match_the_header():
    """crvm/codes.py is the header's CRVIDEOSDK_* table, name for name and value for value."""
    import re

    header = os.path.join(os.path.dirname(__file__), "..", "..", "..", "include", "crvm.h")
    with open(header, encoding="utf-8") as f:
        in_header = dict(
            (m.group(1), int(m.group(2)))
            for m in re.finditer(r"^#define (CRVIDEOSDK_\w+) (-?\d+)$", f.read(), re.M)
        )
    in_module = {k: v for k, v in vars(crvm.codes).items() if k.startswith("CRVIDEOSDK_")}
    assert len(in_header) > 40
    assert in_module == in_header


def test_login_success_and_logout(make_client, uid):
    c = make_client()
    me = uid("alice")
    c.login("demo", "demo-secret", "Alice", me, cookie="ck-1")
    assert c.next_event(timeout=WAIT) == crvm.Event("login_success", usr_id=me, cookie="ck-1")
    c.logout()
    with pytest.raises(crvm.NotLoggedIn):
        c.logout()


def test_login_server_assigns_user_id(make_client):
    c = make_client()
    c.login("demo", "demo-secret")
    ev = c.next_event("login_success", timeout=WAIT)
    assert isinstance(ev.usr_id, str) and ev.usr_id


def test_login_wrong_secret_fails_7(make_client, uid):
    c = make_client()
    c.login("demo", "wrong-secret", "Mallory", uid("mallory"), cookie="bad")
    ev = c.next_event(timeout=WAIT)
    assert ev == crvm.Event("login_fail", sdk_err=crvm.CRVIDEOSDK_ANCTPSWD_ERR, cookie="bad")


def test_login_unreachable_fails_203(tmp_path):
    # A port nothing listens on: bind one, then close it.
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with crvm.Client(f"127.0.0.1:{port}") as c:
        c.login("demo", "demo-secret", "A", "a")
        ev = c.next_event(("login_success", "login_fail"), timeout=WAIT)
        assert (ev.name, ev.sdk_err) == ("login_fail", crvm.CRVIDEOSDK_CREATE_CONN_FAILED)


def test_refusals_raise(make_client, user):
    c = make_client()
    # Not logged in: 12, and no event follows.
    for call in (lambda: c.set_dnd_status(1), lambda: c.get_user_status(),
                 lambda: c.call("someone"), lambda: c.send_cmd("someone", b"x"),
                 lambda: c.get_meetings(), lambda: c.logout()):
        with pytest.raises(crvm.NotLoggedIn) as info:
            call()
        assert info.value.code == 12 and info.value.text == "not logged in"
    # Bad arguments: 5.
    with pytest.raises(crvm.InvalidParam) as info:
        c.set_option("no_such_option", "x")
    assert info.value.code == crvm.CRVIDEOSDK_MEETPARAM_ERR
    with pytest.raises(crvm.InvalidParam):
        c.set_option("dispatch", "sometimes")
    with pytest.raises(crvm.InvalidParam):
        c.login("", "demo-secret")  # app ID required
    with pytest.raises(crvm.InvalidParam):
        crvm.Client("")
    with pytest.raises(TypeError):
        c.login(b"demo", "demo-secret")
    with pytest.raises(crvm.InvalidParam):
        c.poll(0)  # not in manual mode

    a, _ = user("alice")
    with pytest.raises(crvm.LoginStateError):
        a.login("demo", "demo-secret", "again", "again")
    with pytest.raises(crvm.LoginStateError):
        a.set_option("request_timeout_ms", 1000)
    with pytest.raises(crvm.InvalidParam):
        a.create_meeting("subject", -1)
    with pytest.raises(crvm.InvalidParam):
        a.create_meeting("x" * 51)
    with pytest.raises(crvm.InvalidParam):
        a.call("bob", meet_obj="[1, 2]")  # not a JSON object
    with pytest.raises(crvm.InvalidParam):
        a.call("bob\0evil")  # a NUL would silently cut the string in C
    with pytest.raises(crvm.InvalidParam):
        a.set_dnd_status(2 ** 31)  # would wrap to a negative int32
    with pytest.raises(crvm.DataError) as info:
        a.send_cmd("bob", bytes(51_201))
    assert info.value.code == crvm.CRVIDEOSDK_SENDCMD_LARGE
    with pytest.raises(TypeError):
        a.send_cmd("bob", "text is not bytes")
    with pytest.raises(crvm.FileError) as info:
        a.send_file("bob", "/no/such/file")
    assert info.value.code == crvm.CRVIDEOSDK_FILE_NOT_EXIST
    # Every refusal above was synchronous: no event followed any of them.
    assert c.pending_events() == [] and a.pending_events() == []


def test_presence_query_and_push(user):
    a, alice = user("alice")
    a.start_user_status_notify(cookie="sub")
    assert a.next_event(timeout=WAIT) == crvm.Event("start_user_status_notify_rslt",
                                                    sdk_err=0, cookie="sub")
    b, bob = user("bob")
    b.set_dnd_status(1, cookie="dnd")
    assert b.next_event(timeout=WAIT) == crvm.Event("set_dnd_status_success", cookie="dnd")

    def bob_dnd_on(text):
        st = json.loads(text)
        return st["userID"] == bob and st["DNDType"] == 1

    ev = a.next_event("notify_user_status", timeout=WAIT, user_status=bob_dnd_on)
    assert ev.cookie == "sub"
    assert json.loads(ev.user_status) == {"userID": bob, "userStatus": 1, "DNDType": 1}

    a.get_user_status(cookie="q")
    ev = a.next_event("get_user_status_success", timeout=WAIT)
    users = {u["userID"]: u for u in json.loads(ev.users_status)}
    assert users[alice]["userStatus"] == 1 and users[bob]["DNDType"] == 1 and ev.cookie == "q"

    a.stop_user_status_notify(cookie="unsub")
    assert a.next_event("stop_user_status_notify_rslt", timeout=WAIT).sdk_err == 0


def test_meetings(user):
    a, alice = user("alice")
    a.create_meeting("weekly", 1, cookie="m")
    ev = a.next_event(("create_meeting_success", "create_meeting_fail"), timeout=WAIT)
    meeting = json.loads(ev.meet_obj)
    assert ev.name == "create_meeting_success" and ev.cookie == "m"
    assert meeting["subject"] == "weekly" and meeting["creator"] == alice
    assert len(meeting["pswd"]) == 6
    a.get_meetings()
    listed = json.loads(a.next_event("get_meetings_success", timeout=WAIT).json_meetings)
    assert meeting["ID"] in [m["ID"] for m in listed]
    a.destroy_meeting(meeting["ID"])
    assert a.next_event("destroy_meeting_rslt", timeout=WAIT).sdk_err == 0
    a.destroy_meeting(meeting["ID"])
    assert a.next_event("destroy_meeting_rslt", timeout=WAIT).sdk_err == crvm.CRVIDEOSDK_MEETNOTEXIST


def test_handlers_run_on_the_dispatcher_thread_and_exceptions_are_contained(user, caplog):
    seen = []

    def on_any(ev):
        seen.append((ev.name, threading.current_thread() is threading.main_thread()))

    def broken(ev):
        raise RuntimeError("handler bug")

    a, alice = user("alice", on_event=on_any)
    a.on("set_dnd_status_success", broken)
    with caplog.at_level(logging.ERROR, logger="crvm"):
        a.set_dnd_status(1, cookie="one")
        # The raising handler neither stops the event from being queued nor breaks delivery.
        assert a.next_event(timeout=WAIT).cookie == "one"
        a.off("set_dnd_status_success", broken)
        a.set_dnd_status(0, cookie="two")
        assert a.next_event(timeout=WAIT).cookie == "two"
    assert seen == [("login_success", False), ("set_dnd_status_success", False),
                    ("set_dnd_status_success", False)]
    assert [r.exc_info[1].args for r in caplog.records] == [("handler bug",)]
    with pytest.raises(ValueError):
        a.on("no_such_event", print)
    with pytest.raises(ValueError):
        a.next_event("no_such_event", timeout=0)


def test_handler_only_mode_and_next_event_inside_a_handler(make_client, uid):
    got = threading.Event()
    errors = []
    c = make_client(queue_events=False)

    def on_login(ev):
        try:
            c.next_event(timeout=0)
        except RuntimeError as e:  # it would wait for itself
            errors.append(e)
        got.set()

    c.on("login_success", on_login)
    c.login("demo", "demo-secret", "H", uid("h"))
    assert got.wait(WAIT) and len(errors) == 1
    assert c.pending_events() == []
    with pytest.raises(TimeoutError):
        c.next_event(timeout=0.05)


def test_manual_dispatch(make_client, uid):
    c = make_client(options={"dispatch": "manual"})
    on_main = []
    c.on("login_success", lambda ev: on_main.append(
        threading.current_thread() is threading.main_thread()))
    me = uid("manual")
    c.login("demo", "demo-secret", "M", me)
    # next_event polls on this thread; the handler ran here too.
    assert c.next_event(timeout=WAIT).usr_id == me and on_main == [True]
    c.set_dnd_status(1)
    n = 0
    while n == 0:
        n = c.poll(int(WAIT * 1000))
    assert n == 1 and c.next_event(timeout=0).name == "set_dnd_status_success"


def test_close_from_inside_a_handler(make_client, uid):
    done = threading.Event()
    c = make_client()

    def on_login(ev):
        c.close()  # returns at once; completes when this handler returns
        done.set()

    c.on("login_success", on_login)
    c.login("demo", "demo-secret", "C", uid("closer"))
    assert done.wait(WAIT)
    assert c.closed
    # The event was still queued; nothing else arrives, and calls are refused with 5.
    assert c.next_event(timeout=WAIT).name == "login_success"
    with pytest.raises(crvm.InvalidParam):
        c.set_dnd_status(1)


def test_context_manager_closes_and_close_is_idempotent(server, uid):
    with crvm.Client(server.addr) as c:
        c.login("demo", "demo-secret", "X", uid("x"))
        assert c.next_event("login_success", timeout=WAIT)
    assert c.closed
    c.close()
    c.destroy()
    with pytest.raises(crvm.InvalidParam):
        c.login("demo", "demo-secret")


def test_events_iterator(user):
    a, _ = user("alice")
    for i in range(3):
        a.set_dnd_status(i, cookie=str(i))
    cookies = []
    for ev in a.events(timeout=WAIT):
        cookies.append((ev.name, ev.cookie))
        if len(cookies) == 3:
            break
    assert cookies == [("set_dnd_status_success", str(i)) for i in range(3)]
    # With nothing arriving, the iterator ends after its timeout.
    assert list(a.events(timeout=0.05)) == []


def test_missing_library_is_a_clear_error(tmp_path):
    env = dict(os.environ, CRVM_LIB=str(tmp_path / "nope" / "libcrvm.so"))
    r = subprocess.run([sys.executable, "-c", "import crvm; crvm.version()"], env=env,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(crvm.__file__))),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "LibraryNotFound" in r.stderr and "CRVM_LIB" in r.stderr


def test_dropped_client_logs_out(server, user, uid):
    import gc
    a, _ = user("watcher")
    a.start_user_status_notify()
    a.next_event("start_user_status_notify_rslt", timeout=WAIT)
    c = crvm.Client(server.addr)
    gone = uid("dropped")
    c.login("demo", "demo-secret", "D", gone)
    c.next_event("login_success", timeout=WAIT)
    del c
    gc.collect()  # the finalizer ran crvm_destroy, which logged out cleanly

    def offline(text):
        st = json.loads(text)
        return st["userID"] == gone and st["userStatus"] == 0

    a.next_event("notify_user_status", timeout=WAIT, user_status=offline)
