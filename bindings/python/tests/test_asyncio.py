"""Events in asyncio (client.aevents / client.anext_event) against the real test server.

Each test runs its own event loop with asyncio.run; every wait is bounded by WAIT.
"""

import asyncio
import threading
import time

import pytest

import crvm
from conftest import WAIT


def run(coro):
    async def bounded():
        return await asyncio.wait_for(coro, WAIT * 2)

    return asyncio.run(bounded())


def test_aevents_streams_events_and_ends_when_the_client_is_closed(make_client, uid):
    c = make_client()
    me = uid("async")
    # Queued before the loop starts: aevents reads the client's queue, so nothing is missed.
    c.login("demo", "demo-secret", "A", me, cookie="in")
    closer = threading.Timer(0, c.close)  # started once the last event has been seen

    async def main():
        seen = []
        async for ev in c.aevents():
            seen.append(ev)
            if ev.name == "login_success":
                for i in range(3):
                    c.set_dnd_status(i, cookie=str(i))
            elif len(seen) == 4:
                # Closed from another thread while the iterator waits: the loop ends.
                closer.start()
        return seen

    seen = run(main())
    closer.join()
    assert seen == [crvm.Event("login_success", usr_id=me, cookie="in")] + [
        crvm.Event("set_dnd_status_success", cookie=str(i)) for i in range(3)]
    assert c.closed
    # On a closed client with an empty queue, the iterator ends at once.
    assert run(_collect(c.aevents())) == []


async def _collect(aiter):
    return [ev async for ev in aiter]


def test_a_call_between_two_clients_in_one_loop(user):
    a, alice = user("alice")
    b, bob = user("bob")

    async def callee():
        async for ev in b.aevents():
            if ev.name == "notify_call_in":
                assert ev.caller_id == alice
                b.accept_call(ev.call_id, usr_ext_dat="hi")
            elif ev.name == "notify_call_hungup":
                return ev

    async def caller():
        call_id = a.call(bob, usr_ext_dat="ring")
        accepted = await a.anext_event("notify_call_accepted", timeout=WAIT, call_id=call_id)
        assert accepted.usr_ext_dat == "hi"
        a.hungup_call(call_id, usr_ext_dat="bye")
        await a.anext_event("hungup_call_success", timeout=WAIT)
        return call_id

    async def main():
        # The two waits share one thread: neither blocks the loop.
        return await asyncio.gather(callee(), caller())

    hungup, call_id = run(main())
    assert hungup == crvm.Event("notify_call_hungup", call_id=call_id, usr_ext_dat="bye")
    # anext_event left the events it did not ask for queued, in order.
    assert [e.name for e in a.pending_events()] == ["call_success"]


def test_filters_timeouts_and_errors(make_client, user):
    a, _ = user("alice")
    a.set_dnd_status(1, cookie="x")
    a.get_user_status(cookie="y")

    async def main():
        # A filtered stream leaves the other events queued.
        ev = await a.aevents("get_user_status_success").__anext__()
        assert ev.cookie == "y"
        with pytest.raises(TimeoutError):
            await a.anext_event("notify_call_in", timeout=0.05)
        with pytest.raises(ValueError):
            await a.anext_event("no_such_event")
        return await a.anext_event(timeout=WAIT)

    assert run(main()) == crvm.Event("set_dnd_status_success", cookie="x")

    quiet = make_client(queue_events=False)
    with pytest.raises(RuntimeError):
        run(quiet.anext_event())
    quiet.close()
    with pytest.raises(RuntimeError):
        run(_collect(quiet.aevents()))


def test_anext_event_wakes_when_closed_and_then_raises_eof(user):
    a, _ = user("alice")

    async def main():
        waiting = asyncio.ensure_future(a.anext_event("notify_call_in"))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        t0 = time.monotonic()
        await asyncio.get_running_loop().run_in_executor(None, a.close)
        with pytest.raises(EOFError):
            await waiting
        return time.monotonic() - t0

    assert run(main()) < WAIT


def test_manual_dispatch_runs_handlers_on_the_loop_thread(make_client, uid):
    c = make_client(options={"dispatch": "manual"})
    threads = []
    c.on("login_success", lambda ev: threads.append(threading.get_ident()))
    me = uid("manual")
    c.login("demo", "demo-secret", "M", me)

    async def main():
        async for ev in c.aevents():
            return ev, threading.get_ident()

    ev, loop_thread = run(main())
    assert ev.usr_id == me and threads == [loop_thread]
