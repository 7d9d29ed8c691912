"""crvm — the CloudroomVideoMgr call-signalling API (libcrvm.so) for Python, through ctypes.

    import crvm

    with crvm.Client("127.0.0.1:5210") as c:
        c.login("demo", "demo-secret", "Alice", "alice")     # raises crvm.Error if refused
        ev = c.next_event(("login_success", "login_fail"), timeout=10)
        call_id = c.call("bob")                               # IDs are str

Library: loaded on first use from the path in the environment variable ``CRVM_LIB``, else
``libcrvm.so`` beside this package (an installed wheel carries it), else the system's search (``find_library("crvm")``);
``crvm.LibraryNotFound`` says what was tried.

Methods: ``crvm.Client`` has one method per C function, named without ``crvm_`` (``login``,
``call``, ``send_file``, ...), taking ``str`` (UTF-8) arguments, except that ``send_cmd`` and
``send_buffer`` take ``bytes`` where C takes base64. A non-zero C return (the request was
refused, no event follows) raises ``crvm.Error`` — or its subclass for the code, e.g.
``crvm.NotLoggedIn`` for 12 — with ``.code`` and ``.text`` (``crvm_err_str``).

Events (the decision): every C callback becomes a ``crvm.Event`` — ``event.name`` is the
``crvm_callbacks`` member, its arguments are attributes with the header's names (``data`` is
``bytes`` for ``notify_cmd_data`` / ``notify_buffer_data``). Each event goes, in order, to

1. optional handlers: ``Client(addr, on_event=fn)`` for all events and ``client.on(name, fn)``
   per event. They run on the client's own thread (inside ``poll`` with
   ``dispatch=manual``), one at a time; they may call any method of any client, including
   ``close`` of their own. An exception in a handler is logged on the ``"crvm"`` logger and
   never reaches C.
2. a thread-safe queue read with ``client.next_event(name=None, timeout=None, **fields)``
   (first matching event; non-matching ones stay queued in order; ``TimeoutError`` after
   ``timeout`` seconds) or ``for ev in client.events(timeout=...)``. ``queue_events=False``
   turns the queue off for handler-only apps. In asyncio, ``async for ev in
   client.aevents()`` and ``await client.anext_event(...)`` read the same queue without
   blocking the loop (the iterator ends when the client is closed). With ``dispatch=manual``
   these helpers call ``poll`` themselves while waiting.

The queue is the default because it makes sequential code (tests, scripts, coroutines)
straightforward and keeps user code off the library's thread unless asked.

Lifetime: ``close()`` (alias ``destroy()``; also the context manager's exit, and a finalizer)
calls ``crvm_destroy``; after it returns no handler runs again. The ctypes callback objects are
kept alive with the client until then (and while any handler is still running). Clients left
open at interpreter exit are closed by an ``atexit`` hook.
"""

from ._lib import EVENT_NAMES, LibraryNotFound
from .client import BytesLike, Client, Event, EventNames, Handler, StrPath
from .errors import (DataError, Error, FileError, InvalidParam, LoginStateError, NotLoggedIn,
                     err_str)
from . import _lib, codes
# The CRVIDEOSDK_* error codes and CRVM_ID_BUF_LEN, as crvm.CRVIDEOSDK_NOT_LOGIN etc. (a star
# import, so that type checkers see them too).
from .codes import *  # noqa: F401,F403

__all__ = ["Client", "Event", "Error", "InvalidParam", "LoginStateError", "NotLoggedIn",
           "DataError", "FileError", "LibraryNotFound", "EVENT_NAMES", "err_str", "version",
           "Handler", "EventNames", "StrPath", "BytesLike"]
__all__ += sorted(k for k in vars(codes) if k.startswith(("CRVIDEOSDK_", "CRVM_")))


def version() -> str:
    """The library's version string (crvm_version), e.g. "0.1.0"."""
    text: bytes = _lib.lib().crvm_version()
    return text.decode("ascii")
