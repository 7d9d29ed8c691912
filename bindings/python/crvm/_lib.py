"""Loading libcrvm.so and describing its C ABI (include/crvm.h) to ctypes.

Nothing here is public: use crvm.Client. The library is loaded on first use, looked up in this
order: the file named by the environment variable CRVM_LIB, libcrvm.so next to this package,
then the system's search (ctypes.util.find_library("crvm"), then plain "libcrvm.so").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from typing import Any, Dict, List, Optional, Tuple

from . import _abi

# The members of crvm_callbacks with their arguments (_abi.py, generated from the events table).
EVENTS = _abi.EVENTS

EVENT_NAMES = frozenset(name for name, _ in EVENTS)

# The ctypes type of each kind of event argument.
_KIND_CTYPE = {
    "s": ctypes.c_char_p, "b": ctypes.c_char_p, "i": ctypes.c_int32, "l": ctypes.c_int64,
}

# One CFUNCTYPE per member: void (*)(void *ud, ...).
PROTOTYPES = {
    name: ctypes.CFUNCTYPE(None, ctypes.c_void_p, *(_KIND_CTYPE[kind] for _, kind in args))
    for name, args in EVENTS
}


class Callbacks(ctypes.Structure):
    """struct crvm_callbacks: one function pointer per event; NULL ignores the event."""

    _fields_ = [(name, PROTOTYPES[name]) for name, _ in EVENTS]


class _Handle(ctypes.Structure):
    """The opaque struct crvm_client; only pointers to it are used."""


HANDLE = ctypes.POINTER(_Handle)

# The C types the header uses, as ctypes types (None: void). A type missing here fails the
# first load loudly (KeyError), rather than calling a function with a guessed signature.
_C_TYPE = {
    "void": None,
    "int32_t": ctypes.c_int32,
    "int64_t": ctypes.c_int64,
    "size_t": ctypes.c_size_t,
    "void *": ctypes.c_void_p,
    "const char *": ctypes.c_char_p,
    "char *": ctypes.c_char_p,
    "struct crvm_client *": HANDLE,
    "struct crvm_client **": ctypes.POINTER(HANDLE),
    "const crvm_callbacks *": ctypes.POINTER(Callbacks),
}


def _signatures() -> Dict[str, Tuple[Any, List[Any]]]:
    """name -> (restype, argtypes) of every function of the header."""
    return {name: (_C_TYPE[ret], [_C_TYPE[ty] for _, ty in args])
            for name, ret, args in _abi.FUNCTIONS}


class LibraryNotFound(OSError):
    """libcrvm.so could not be found or loaded."""


_lock = threading.Lock()
_lib: Optional[ctypes.CDLL] = None


def _candidates() -> List[str]:
    env = os.environ.get("CRVM_LIB")
    if env:
        # An explicit choice is final: no silent fallback to another copy.
        return [env]
    found = [os.path.join(os.path.dirname(os.path.abspath(__file__)), "libcrvm.so")]
    found = [p for p in found if os.path.exists(p)]
    system = ctypes.util.find_library("crvm")
    if system:
        found.append(system)
    found.append("libcrvm.so")
    return found


def lib() -> ctypes.CDLL:
    """The loaded library (ctypes.CDLL, GIL released during calls), loaded on first use."""
    global _lib
    with _lock:
        if _lib is None:
            _lib = _load()
        return _lib


def _load() -> ctypes.CDLL:
    tried = []
    for path in _candidates():
        try:
            dll = ctypes.CDLL(path)
        except OSError as e:
            tried.append(f"{path}: {e}")
            continue
        for name, (restype, argtypes) in _signatures().items():
            fn = getattr(dll, name)
            fn.restype = restype
            fn.argtypes = argtypes
        return dll
    raise LibraryNotFound(
        "cannot load libcrvm.so (set CRVM_LIB to its full path, e.g. "
        "target/debug/libcrvm.so after `cargo build`); tried:\n  " + "\n  ".join(tried))
