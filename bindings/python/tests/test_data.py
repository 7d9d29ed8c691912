"""Point-to-point data (docs/API.md §3.5): bytes in, the same bytes out; files; cancel."""

import os

import crvm
from conftest import WAIT

# Every byte value, NULs and invalid UTF-8 included.
ALL_BYTES = bytes(range(256))


def test_cmd_delivered_intact(user):
    a, alice = user("alice")
    b, bob = user("bob")
    for payload in (ALL_BYTES, b"", os.urandom(51_200)):
        task = a.send_cmd(bob, payload)
        assert isinstance(task, str) and task
        ev = b.next_event("notify_cmd_data", timeout=WAIT)
        assert ev.source_user_id == alice and ev.data == payload
        assert a.next_event("send_cmd_rlst", timeout=WAIT) == crvm.Event(
            "send_cmd_rlst", task_id=task, sdk_err=0, cookie="")
    # bytearray and memoryview work as well as bytes.
    a.send_cmd(bob, memoryview(bytearray(b"view")))
    assert b.next_event("notify_cmd_data", timeout=WAIT).data == b"view"


def test_buffer_delivered_intact_with_progress(user):
    a, alice = user("alice")
    b, bob = user("bob")
    payload = os.urandom(3 * 1024 * 1024) + ALL_BYTES
    task = a.send_buffer(bob, payload)
    ev = b.next_event("notify_buffer_data", timeout=WAIT)
    assert ev.source_user_id == alice and ev.data == payload
    assert a.next_event("send_buffer_rlst", timeout=WAIT) == crvm.Event(
        "send_buffer_rlst", task_id=task, sdk_err=0, cookie="")
    progress = [e for e in a.pending_events() if e.name == "send_progress"]
    assert progress and all(e.task_id == task and e.total_len == len(payload) for e in progress)
    assert progress[-1].sended_len == len(payload)
    assert [e.sended_len for e in progress] == sorted(e.sended_len for e in progress)

    # A buffer to nobody: 1102.
    task = a.send_buffer("nobody-" + bob, b"x")
    ev = a.next_event("send_buffer_rlst", timeout=WAIT, task_id=task)
    assert ev.sdk_err == crvm.CRVIDEOSDK_SENDDATA_TARGETINVALID


def test_file_delivered_intact(user, tmp_path):
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    a, alice = user("alice")
    b, bob = user("bob", options={"download_dir": downloads})
    src = tmp_path / "photo é.bin"  # a non-ASCII name travels as UTF-8
    content = os.urandom(2 * 1024 * 1024 + 17)
    src.write_bytes(content)

    task = a.send_file(bob, src)  # a path object is fine; so is str
    ev = b.next_event("notify_file_data", timeout=WAIT)
    assert ev.source_user_id == alice and ev.org_file_name == "photo é.bin"
    assert os.path.dirname(ev.tmp_file) == os.path.realpath(downloads)
    with open(ev.tmp_file, "rb") as f:
        assert f.read() == content
    assert a.next_event("send_file_rlst", timeout=WAIT) == crvm.Event(
        "send_file_rlst", task_id=task, file_name=str(src), sdk_err=0, cookie="")


def test_cancel_a_file_in_flight(user, tmp_path):
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    a, alice = user("alice")
    b, bob = user("bob", options={"download_dir": str(downloads)})
    # A sparse 1 GiB file: far from done when its first progress arrives, so the cancel
    # deterministically catches it in flight (no sleeps).
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(1 << 30)

    task = a.send_file(bob, str(big))
    a.next_event("send_progress", timeout=WAIT, task_id=task)
    a.cancel_send(task)
    assert a.next_event("cancel_send_rlst", timeout=WAIT, task_id=task).sdk_err == 0
    assert b.next_event("notify_cancel_send", timeout=WAIT) == crvm.Event(
        "notify_cancel_send", send_id=task)
    assert os.listdir(downloads) == []  # the partial file is gone

    # Cancelling again finds nothing: 1104.
    a.cancel_send(task)
    assert a.next_event("cancel_send_rlst", timeout=WAIT, task_id=task).sdk_err == \
        crvm.CRVIDEOSDK_TRANSID_INVALID
    # A cmd is not cancellable: 1104 as well.
    cmd = a.send_cmd(bob, b"x")
    a.next_event("send_cmd_rlst", timeout=WAIT, task_id=cmd)
    a.cancel_send(cmd)
    assert a.next_event("cancel_send_rlst", timeout=WAIT, task_id=cmd).sdk_err == \
        crvm.CRVIDEOSDK_TRANSID_INVALID
    # After these round trips, still no send_file_rlst for the cancelled task.
    assert not [e for e in a.pending_events() if e.name == "send_file_rlst"]
