"""One-to-one calls (docs/API.md §3.4) between two real clients."""

import json

import crvm
from conftest import WAIT


def test_full_call(user):
    a, alice = user("alice")
    b, bob = user("bob")
    meet = json.dumps({"ID": 12345678, "subject": "weekly"})

    call_id = a.call(bob, meet_obj=meet, usr_ext_dat="ring ring", cookie="c1")
    assert isinstance(call_id, str) and 0 < len(call_id) < crvm.CRVM_ID_BUF_LEN
    assert b.next_event(timeout=WAIT) == crvm.Event(
        "notify_call_in", call_id=call_id, meet_obj=meet, caller_id=alice,
        usr_ext_dat="ring ring")
    assert a.next_event(timeout=WAIT) == crvm.Event("call_success", call_id=call_id,
                                                    cookie="c1")

    b.accept_call(call_id, usr_ext_dat="hello", cookie="c2")
    assert b.next_event(timeout=WAIT) == crvm.Event("accept_call_success", call_id=call_id,
                                                    cookie="c2")
    # An empty meet_obj from the callee hands the caller its own back.
    assert a.next_event(timeout=WAIT) == crvm.Event(
        "notify_call_accepted", call_id=call_id, usr_ext_dat="hello", meet_obj=meet)

    a.hungup_call(call_id, usr_ext_dat="bye", cookie="c3")
    assert a.next_event(timeout=WAIT) == crvm.Event("hungup_call_success", call_id=call_id,
                                                    cookie="c3")
    assert b.next_event(timeout=WAIT) == crvm.Event("notify_call_hungup", call_id=call_id,
                                                    usr_ext_dat="bye")

    # The call is over: hanging it up again fails with 600.
    b.hungup_call(call_id)
    assert b.next_event(timeout=WAIT) == crvm.Event(
        "hungup_call_fail", call_id=call_id, sdk_err=crvm.CRVIDEOSDK_INVALID_CALLID, cookie="")


def test_rejected_and_failed_calls(user, uid):
    a, alice = user("alice")
    b, bob = user("bob")
    call_id = a.call(bob)
    ring = b.next_event("notify_call_in", timeout=WAIT)
    b.reject_call(ring.call_id, usr_ext_dat="busy now")
    assert b.next_event("reject_call_success", timeout=WAIT).call_id == call_id
    ev = a.next_event("notify_call_rejected", timeout=WAIT)
    assert (ev.call_id, ev.reason, ev.usr_ext_dat) == (call_id,
                                                       crvm.CRVIDEOSDK_ERR_REFUSE, "busy now")

    offline = a.call(uid("nobody"))
    ev = a.next_event("call_fail", timeout=WAIT)
    assert (ev.call_id, ev.sdk_err) == (offline, crvm.CRVIDEOSDK_ERR_OFFLINE)
