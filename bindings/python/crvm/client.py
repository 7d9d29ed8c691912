"""crvm.Client and crvm.Event: the C API (crvm.h) wrapped for Python."""

from __future__ import annotations

import asyncio
import atexit
import base64
import collections
import ctypes
import logging
import os
import threading
import time
import weakref
from typing import (TYPE_CHECKING, Any, AsyncIterator, Callable, Deque, Dict, FrozenSet, Iterable,
                    Iterator, List, Mapping, Optional, Tuple, Union)

from . import _lib
from .codes import CRVM_ID_BUF_LEN, CRVIDEOSDK_MEETPARAM_ERR
from .errors import Error, check

_log = logging.getLogger("crvm")

_INT32_MIN, _INT32_MAX = -(2 ** 31), 2 ** 31 - 1

#: An event handler: called with each Event; its return value is ignored.
Handler = Callable[["Event"], object]
#: What ``next_event`` & co. take as ``name``: one event name, several, or None for any.
EventNames = Optional[Union[str, Iterable[str]]]
#: A file name: ``str``, ``bytes`` or a path object.
StrPath = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
#: Anything ``memoryview`` accepts: ``bytes``, ``bytearray``, ``memoryview``, ...
BytesLike = Union[bytes, bytearray, memoryview]


class Event:
    """One event of a client: ``name`` is the crvm_callbacks member (e.g. ``"notify_call_in"``)
    and each argument of that callback is an attribute with the header's name (``call_id``,
    ``sdk_err``, ``cookie``...). Strings are ``str``; ``notify_cmd_data`` and
    ``notify_buffer_data`` carry ``data`` as ``bytes`` (decoded from the C API's base64)."""

    name: str

    def __init__(self, name: str, **fields: Any) -> None:
        self.name = name
        self.__dict__.update(fields)

    if TYPE_CHECKING:
        # The fields depend on the event: to a type checker, any attribute may exist.
        def __getattr__(self, field: str) -> Any: ...

    @property
    def fields(self) -> Dict[str, Any]:
        """The event's arguments as a dict (without ``name``)."""
        return {k: v for k, v in self.__dict__.items() if k != "name"}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Event) and self.__dict__ == other.__dict__

    def __repr__(self) -> str:
        def short(v: Any) -> str:
            if isinstance(v, bytes) and len(v) > 32:
                return f"<{len(v)} bytes>"
            return repr(v)

        args = ", ".join(f"{k}={short(v)}" for k, v in self.fields.items())
        return f"Event({self.name!r}, {args})"


def _to_py(kind: str, value: Any) -> Any:
    if kind == "s":
        return "" if value is None else value.decode("utf-8", "surrogateescape")
    if kind == "b":
        return b"" if value is None else base64.b64decode(value)
    return value


def _invalid(what: str) -> Error:
    err = Error(CRVIDEOSDK_MEETPARAM_ERR)
    err.text = f"{err.text}: {what}"
    return err


def _s(value: Optional[str], name: str) -> Optional[bytes]:
    """A str argument as UTF-8 bytes for C; None stays NULL (the library reads it as "")."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{name} must be str, not {type(value).__name__}")
    if "\0" in value:
        raise _invalid(f"{name} contains a NUL character")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise _invalid(f"{name} is not valid Unicode") from None


def _path(value: StrPath, name: str) -> Optional[bytes]:
    if isinstance(value, str):
        return _s(value, name)
    encoded = os.fsencode(value)  # bytes or os.PathLike; TypeError otherwise
    if b"\0" in encoded:
        raise _invalid(f"{name} contains a NUL byte")
    return encoded


def _i32(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be int, not {type(value).__name__}")
    if not _INT32_MIN <= value <= _INT32_MAX:
        raise _invalid(f"{name} is out of the int32 range")
    return value


def _b64(data: BytesLike, name: str) -> bytes:
    if isinstance(data, str):
        raise TypeError(f"{name} must be bytes-like, not str (encode it first)")
    return base64.b64encode(memoryview(data))


class _Dispatcher:
    """Receives the C callbacks: builds Events, runs the handlers, queues the events.

    It owns the CFUNCTYPE objects (the C side holds raw pointers to them). They reference this
    object back, so the pair is freed by Python's cycle collector, never while a callback is
    running (its frame keeps the dispatcher reachable) and, because the Client calls
    crvm_destroy before it lets go of the dispatcher, never before crvm_destroy has returned.
    """

    def __init__(self, on_event: Optional[Handler], queue_events: bool) -> None:
        self.cond = threading.Condition()
        self.pending: Deque[Event] = collections.deque()
        self.handlers: Dict[str, List[Handler]] = {}
        self.on_event = on_event
        self.queue_events = queue_events
        # Set once crvm_destroy has returned: no event is queued after that.
        self.closed = False
        # The asyncio readers waiting for an event: (their loop, the flag to set in it).
        self.waiters: List[Tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self.local = threading.local()
        self.struct = _lib.Callbacks()
        self.cfuncs: List[Any] = []
        for name, args in _lib.EVENTS:
            cfunc = _lib.PROTOTYPES[name](self._trampoline(name, args))
            setattr(self.struct, name, cfunc)
            self.cfuncs.append(cfunc)

    def _trampoline(self, name: str, args: Tuple[Tuple[str, str], ...]) -> Callable[..., None]:
        fields = [field for field, _ in args]
        kinds = [kind for _, kind in args]

        def on_c_event(_ud: Any, *values: Any) -> None:
            # Nothing may escape into C: every exception is logged here.
            self.local.depth = getattr(self.local, "depth", 0) + 1
            try:
                event = Event(name, **{f: _to_py(k, v) for f, k, v in zip(fields, kinds, values)})
                self.deliver(event)
            except BaseException:
                _log.exception("crvm: error while delivering %s", name)
            finally:
                self.local.depth -= 1

        return on_c_event

    def in_callback(self) -> bool:
        return getattr(self.local, "depth", 0) > 0

    def deliver(self, event: Event) -> None:
        with self.cond:
            handlers = [self.on_event] + list(self.handlers.get(event.name, ()))
        for handler in handlers:
            if handler is None:
                continue
            try:
                handler(event)
            except BaseException:
                _log.exception("crvm: event handler %r raised on %s", handler, event.name)
        if self.queue_events:
            with self.cond:
                self.pending.append(event)
                self.cond.notify_all()
                self._wake_async()

    def mark_closed(self) -> None:
        """crvm_destroy has returned: wakes every reader so that async ones can end."""
        with self.cond:
            self.closed = True
            self.cond.notify_all()
            self._wake_async()

    def _wake_async(self) -> None:
        """Sets the flag of every asyncio reader, from any thread, in its loop. Holds cond."""
        for loop, flag in self.waiters:
            try:
                loop.call_soon_threadsafe(flag.set)
            except RuntimeError:  # that loop is closed; its reader is gone
                pass

    def take(self, names: Optional[Iterable[str]], match: Mapping[str, Any]) -> Optional[Event]:
        """Removes and returns the first queued event that matches, or None. Holds cond."""
        for i, event in enumerate(self.pending):
            if names is not None and event.name not in names:
                continue
            if all(_matches(getattr(event, k, _MISSING), want) for k, want in match.items()):
                del self.pending[i]
                return event
        return None


_MISSING = object()


def _matches(value: Any, want: Any) -> bool:
    if value is _MISSING:
        return False
    if callable(want):
        return bool(want(value))
    return bool(value == want)


# Clients still open at interpreter exit are closed while threads can still run Python code.
_live: "weakref.WeakSet[Client]" = weakref.WeakSet()


def _names(name: EventNames) -> Optional[FrozenSet[str]]:
    """``name`` of next_event & co. as a set of known names (None: any event)."""
    if name is None:
        return None
    names = frozenset((name,) if isinstance(name, str) else name)
    unknown = names - _lib.EVENT_NAMES
    if unknown:
        raise ValueError(f"unknown event(s) {sorted(unknown)}")
    return names


@atexit.register
def _close_all() -> None:
    for client in list(_live):
        client.close()


class Client:
    """A crvm client (crvm_create ... crvm_destroy) for the server at ``server_addr``
    ("host:port").

    Methods are the C functions without the ``crvm_`` prefix and without the handle. Each
    returns once the request is queued (never waiting on the network) and raises ``crvm.Error``
    (with ``.code``) if the library refused it; otherwise exactly one result event follows
    (none for ``logout``). Methods that produce an ID (``call``, ``send_*``) return it as str.

    Events: see the package docstring. ``on_event(event)`` runs for every event, and handlers
    added with ``on(name, fn)`` for that event, on the client's own thread (or inside
    ``poll``); then the event is queued for ``next_event`` / ``events`` unless
    ``queue_events=False``. ``options`` are passed to ``set_option`` in order.
    """

    def __init__(self, server_addr: str, *, on_event: Optional[Handler] = None,
                 queue_events: bool = True,
                 options: Optional[Mapping[str, Union[str, int, StrPath]]] = None) -> None:
        self._handle: Any = None
        self._manual = False
        self._logged_in_once = False
        self._dispatch = _Dispatcher(on_event, queue_events)
        # Stored on the object too: the C side holds pointers to these until crvm_destroy.
        self._callbacks = self._dispatch.struct
        self._cfuncs = self._dispatch.cfuncs
        lib = _lib.lib()
        handle = _lib.HANDLE()
        check(lib.crvm_create(_s(server_addr, "server_addr"), ctypes.byref(self._callbacks),
                              ctypes.sizeof(self._callbacks), None, ctypes.byref(handle)))
        self._handle = handle
        self._lib = lib
        _live.add(self)
        try:
            for key, value in (options or {}).items():
                self.set_option(key, value)
        except BaseException:
            self.close()
            raise

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """crvm_destroy: logs out if logged in (waiting at most 5 s for the server), stops the
        client's threads; no handler runs after it returns. Idempotent. From inside one of this
        client's handlers it returns at once and completes when that handler returns. Events
        already queued stay readable with ``next_event``."""
        handle, self._handle = self._handle, None
        if handle:
            _live.discard(self)
            self._lib.crvm_destroy(handle)
        dispatch = getattr(self, "_dispatch", None)
        if dispatch is not None:
            dispatch.mark_closed()

    destroy = close

    @property
    def closed(self) -> bool:
        return not self._handle

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def _c(self, fn: str, *args: Any) -> None:
        # A closed client passes NULL: the library refuses it with 5.
        check(getattr(self._lib, fn)(self._handle, *args))

    def _with_id(self, fn: str, *args: Any) -> str:
        buf = ctypes.create_string_buffer(CRVM_ID_BUF_LEN)
        self._c(fn, *args, buf, len(buf))
        return buf.value.decode("utf-8")

    # -- options and manual dispatch -------------------------------------------------------------

    def set_option(self, key: str, value: Union[str, int, StrPath]) -> None:
        """crvm_set_option, only while logged out (else 9). ``value`` may be a str, an int
        (timeouts, sizes) or a path (download_dir, tls_ca_file, log_file)."""
        if isinstance(value, bool):
            raise TypeError("value must be str, int or a path, not bool")
        if isinstance(value, int):
            value = str(value)
        elif not isinstance(value, str) and isinstance(value, os.PathLike):
            value = os.fspath(value)
        encoded = _path(value, "value") if isinstance(value, bytes) else _s(value, "value")
        self._c("crvm_set_option", _s(key, "key"), encoded)
        if key == "dispatch" and not self._logged_in_once:
            self._manual = value == "manual"

    def poll(self, timeout_ms: int = 0) -> int:
        """crvm_poll (dispatch=manual only): runs pending events on this thread, waiting up to
        ``timeout_ms`` for the first; returns how many ran. Raises Error(5) if not manual."""
        n: int = self._lib.crvm_poll(self._handle, _i32(timeout_ms, "timeout_ms"))
        if n < 0:
            raise Error(-n)
        return n

    # -- events ------------------------------------------------------------------------------------

    def on(self, name: str, handler: Handler) -> None:
        """Calls ``handler(event)`` for every event called ``name``, on the client's thread."""
        if name not in _lib.EVENT_NAMES:
            raise ValueError(f"unknown event {name!r}")
        with self._dispatch.cond:
            self._dispatch.handlers.setdefault(name, []).append(handler)

    def off(self, name: str, handler: Optional[Handler] = None) -> None:
        """Removes ``handler`` (or every handler) of event ``name``."""
        with self._dispatch.cond:
            handlers = self._dispatch.handlers.get(name, [])
            if handler is None:
                handlers.clear()
            elif handler in handlers:
                handlers.remove(handler)

    def next_event(self, name: EventNames = None, timeout: Optional[float] = None,
                   **match: Any) -> Event:
        """Removes and returns the first queued event named ``name`` (a str, a tuple of names,
        or None for any) whose fields equal the keyword arguments (a callable keyword value is
        a predicate instead), waiting up to ``timeout`` seconds (None: forever). Events that do
        not match stay queued, in order. Raises TimeoutError. With dispatch=manual it runs
        ``poll`` on this thread while it waits."""
        names = _names(name)
        if self._dispatch.in_callback():
            raise RuntimeError("next_event called from one of this client's event handlers; "
                               "it would wait for itself")
        deadline = None if timeout is None else time.monotonic() + timeout
        d = self._dispatch
        while True:
            with d.cond:
                event = d.take(names, match)
                if event is not None:
                    return event
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    queued = [e.name for e in d.pending]
                    raise TimeoutError(f"no event {sorted(names) if names else 'at all'}"
                                       f"{' with ' + repr(match) if match else ''} within "
                                       f"{timeout} s; queued: {queued}")
                if not (self._manual and self._handle):
                    d.cond.wait(left)
                    continue
            # Manual dispatch: run the events here, in short slices so that events another
            # thread polls are seen promptly too.
            self.poll(int(min(0.2 if left is None else left, 0.2) * 1000))

    def events(self, timeout: Optional[float] = None) -> Iterator[Event]:
        """Iterates over events as they arrive; stops after ``timeout`` seconds without one
        (None: never)."""
        while True:
            try:
                yield self.next_event(timeout=timeout)
            except TimeoutError:
                return

    # -- events in asyncio -------------------------------------------------------------------------

    async def anext_event(self, name: EventNames = None, timeout: Optional[float] = None,
                          **match: Any) -> Event:
        """``next_event`` for asyncio: waits without blocking the event loop. Raises
        TimeoutError after ``timeout`` seconds, and EOFError once the client is closed and no
        queued event matches (nothing can arrive any more)."""
        names = _names(name)
        d = self._dispatch
        if not d.queue_events:
            raise RuntimeError("the client was created with queue_events=False: there is no "
                               "queue to read events from")
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        # The dispatcher's thread (or poll) sets this flag in our loop after queuing an event
        # (loop.call_soon_threadsafe); it is cleared before each look at the queue, so no
        # wake-up is lost between the look and the wait.
        flag = asyncio.Event()
        waiter = (loop, flag)
        with d.cond:
            d.waiters.append(waiter)
        try:
            while True:
                flag.clear()
                with d.cond:
                    event = d.take(names, match)
                    if event is not None:
                        return event
                    if d.closed:
                        raise EOFError("the client is closed")
                left = None if deadline is None else deadline - loop.time()
                if left is not None and left <= 0:
                    raise TimeoutError(f"no event {sorted(names) if names else 'at all'}"
                                       f"{' with ' + repr(match) if match else ''} within "
                                       f"{timeout} s")
                if self._manual and self._handle:
                    # Manual dispatch: the events run here, on the loop's thread.
                    if self.poll(0):
                        continue
                    left = 0.02 if left is None else min(left, 0.02)
                try:
                    await asyncio.wait_for(flag.wait(), left)
                except asyncio.TimeoutError:
                    pass
        finally:
            with d.cond:
                d.waiters.remove(waiter)

    async def aevents(self, name: EventNames = None, **match: Any) -> AsyncIterator[Event]:
        """Iterates over events as they arrive, in asyncio: ``async for ev in
        client.aevents(): ...``. It reads the same queue as ``next_event`` (each event is
        taken once, by whichever reader asks first; events queued before the loop started
        come first) and ends when the client is closed, after the events already queued.
        ``name`` and the keyword arguments select events as in ``next_event``; others stay
        queued."""
        while True:
            try:
                event = await self.anext_event(name, **match)
            except EOFError:
                return
            yield event

    def pending_events(self) -> List[Event]:
        """A snapshot of the queued events (left in the queue)."""
        with self._dispatch.cond:
            return list(self._dispatch.pending)

    # -- login and logout ------------------------------------------------------------------------

    def login(self, auth_acnt: str, auth_pswd: str, nick_name: str = "", priv_acnt: str = "",
              priv_auth_code: str = "", cookie: str = "") -> None:
        """Result: ``login_success`` (``usr_id``, ``cookie``) or ``login_fail`` (``sdk_err``)."""
        self._c("crvm_login", _s(auth_acnt, "auth_acnt"), _s(auth_pswd, "auth_pswd"),
                _s(nick_name, "nick_name"), _s(priv_acnt, "priv_acnt"),
                _s(priv_auth_code, "priv_auth_code"), _s(cookie, "cookie"))
        self._logged_in_once = True

    def network_changed(self) -> None:
        """The network changed: drop the link and resume the session at once (docs/API.md §3.6)."""
        self._c("crvm_network_changed")

    def logout(self) -> None:
        """No event follows. Raises NotLoggedIn (12) if not logged in."""
        self._c("crvm_logout")

    # -- meetings ----------------------------------------------------------------------------------

    def create_meeting(self, meet_subject: str, create_pswd: int = 0, cookie: str = "") -> None:
        self._c("crvm_create_meeting", _s(meet_subject, "meet_subject"),
                _i32(create_pswd, "create_pswd"), _s(cookie, "cookie"))

    # -- calls -------------------------------------------------------------------------------------

    def call(self, called_user_id: str, meet_obj: str = "", usr_ext_dat: str = "",
             cookie: str = "") -> str:
        """Returns the new call's ID (str)."""
        return self._with_id("crvm_call", _s(called_user_id, "called_user_id"),
                             _s(meet_obj, "meet_obj"), _s(usr_ext_dat, "usr_ext_dat"),
                             _s(cookie, "cookie"))

    def accept_call(self, call_id: str, meet_obj: str = "", usr_ext_dat: str = "",
                    cookie: str = "") -> None:
        self._c("crvm_accept_call", _s(call_id, "call_id"), _s(meet_obj, "meet_obj"),
                _s(usr_ext_dat, "usr_ext_dat"), _s(cookie, "cookie"))

    def reject_call(self, call_id: str, usr_ext_dat: str = "", cookie: str = "") -> None:
        self._c("crvm_reject_call", _s(call_id, "call_id"), _s(usr_ext_dat, "usr_ext_dat"),
                _s(cookie, "cookie"))

    def hungup_call(self, call_id: str, usr_ext_dat: str = "", cookie: str = "") -> None:
        self._c("crvm_hungup_call", _s(call_id, "call_id"), _s(usr_ext_dat, "usr_ext_dat"),
                _s(cookie, "cookie"))

    # -- point-to-point data -----------------------------------------------------------------------

    def send_cmd(self, target_user_id: str, data: BytesLike) -> str:
        """Sends ``data`` (bytes, at most 51,200); returns the task ID (str)."""
        return self._with_id("crvm_send_cmd", _s(target_user_id, "target_user_id"),
                             _b64(data, "data"))

    def send_buffer(self, target_user_id: str, data: BytesLike) -> str:
        """Sends ``data`` (bytes, at most max_buffer_bytes); returns the task ID (str)."""
        return self._with_id("crvm_send_buffer", _s(target_user_id, "target_user_id"),
                             _b64(data, "data"))

    def send_file(self, target_user_id: str, file_name: StrPath) -> str:
        """Sends the file at ``file_name`` (str or path); returns the task ID (str)."""
        return self._with_id("crvm_send_file", _s(target_user_id, "target_user_id"),
                             _path(file_name, "file_name"))

    # -- the plain requests ------------------------------------------------------------------------

    # BEGIN generated from include/crvm.h by build.rs: do not edit; `cargo build` rewrites it.
    # The plain requests, crvm_<name> without the handle: a trailing cookie defaults to "",
    # an ID buffer becomes the returned str.

    def set_dnd_status(self, dnd_status: int, cookie: str = "") -> None:
        self._c("crvm_set_dnd_status", _i32(dnd_status, "dnd_status"), _s(cookie, "cookie"))

    def get_user_status(self, cookie: str = "") -> None:
        self._c("crvm_get_user_status", _s(cookie, "cookie"))

    def start_user_status_notify(self, cookie: str = "") -> None:
        self._c("crvm_start_user_status_notify", _s(cookie, "cookie"))

    def stop_user_status_notify(self, cookie: str = "") -> None:
        self._c("crvm_stop_user_status_notify", _s(cookie, "cookie"))

    def destroy_meeting(self, meet_id: int, cookie: str = "") -> None:
        self._c("crvm_destroy_meeting", _i32(meet_id, "meet_id"), _s(cookie, "cookie"))

    def get_meetings(self, cookie: str = "") -> None:
        self._c("crvm_get_meetings", _s(cookie, "cookie"))

    def cancel_send(self, task_id: str) -> None:
        self._c("crvm_cancel_send", _s(task_id, "task_id"))
    # END generated from include/crvm.h
