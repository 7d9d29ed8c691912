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
from typing import List, Optional

# The 36 members of crvm_callbacks, in the header's order (SPEC §2.3), each with its arguments
# after `void *ud`. Kinds: "s" a string (str), "i" int32_t, "l" int64_t, "b" a base64 string
# delivered to Python as bytes. The field names are the header's, except data_base64 -> data.
EVENTS = (
    ("login_success", (("usr_id", "s"), ("cookie", "s"))),
    ("login_fail", (("sdk_err", "i"), ("cookie", "s"))),
    ("line_off", (("sdk_err", "i"),)),
    ("set_dnd_status_success", (("cookie", "s"),)),
    ("set_dnd_status_fail", (("sdk_err", "i"), ("cookie", "s"))),
    ("get_user_status_success", (("users_status", "s"), ("cookie", "s"))),
    ("get_user_status_fail", (("sdk_err", "i"), ("cookie", "s"))),
    ("notify_user_status", (("user_status", "s"), ("cookie", "s"))),
    ("start_user_status_notify_rslt", (("sdk_err", "i"), ("cookie", "s"))),
    ("stop_user_status_notify_rslt", (("sdk_err", "i"), ("cookie", "s"))),
    ("create_meeting_success", (("meet_obj", "s"), ("cookie", "s"))),
    ("create_meeting_fail", (("sdk_err", "i"), ("cookie", "s"))),
    ("destroy_meeting_rslt", (("sdk_err", "i"), ("cookie", "s"))),
    ("get_meetings_success", (("json_meetings", "s"), ("cookie", "s"))),
    ("get_meetings_fail", (("sdk_err", "i"), ("cookie", "s"))),
    ("call_success", (("call_id", "s"), ("cookie", "s"))),
    ("call_fail", (("call_id", "s"), ("sdk_err", "i"), ("cookie", "s"))),
    ("accept_call_success", (("call_id", "s"), ("cookie", "s"))),
    ("accept_call_fail", (("call_id", "s"), ("sdk_err", "i"), ("cookie", "s"))),
    ("reject_call_success", (("call_id", "s"), ("cookie", "s"))),
    ("reject_call_fail", (("call_id", "s"), ("sdk_err", "i"), ("cookie", "s"))),
    ("hungup_call_success", (("call_id", "s"), ("cookie", "s"))),
    ("hungup_call_fail", (("call_id", "s"), ("sdk_err", "i"), ("cookie", "s"))),
    ("notify_call_in",
     (("call_id", "s"), ("meet_obj", "s"), ("caller_id", "s"), ("usr_ext_dat", "s"))),
    ("notify_call_accepted", (("call_id", "s"), ("usr_ext_dat", "s"), ("meet_obj", "s"))),
    ("notify_call_rejected", (("call_id", "s"), ("reason", "i"), ("usr_ext_dat", "s"))),
    ("notify_call_hungup", (("call_id", "s"), ("usr_ext_dat", "s"))),
    ("send_cmd_rlst", (("task_id", "s"), ("sdk_err", "i"), ("cookie", "s"))),
    ("send_buffer_rlst", (("task_id", "s"), ("sdk_err", "i"), ("cookie", "s"))),
    ("send_file_rlst", (("task_id", "s"), ("file_name", "s"), ("sdk_err", "i"), ("cookie", "s"))),
    ("send_progress",
     (("task_id", "s"), ("sended_len", "l"), ("total_len", "l"), ("cookie", "s"))),
    ("cancel_send_rlst", (("task_id", "s"), ("sdk_err", "i"), ("cookie", "s"))),
    ("notify_cmd_data", (("source_user_id", "s"), ("data", "b"))),
    ("notify_buffer_data", (("source_user_id", "s"), ("data", "b"))),
    ("notify_file_data", (("source_user_id", "s"), ("tmp_file", "s"), ("org_file_name", "s"))),
    ("notify_cancel_send", (("send_id", "s"),)),
    ("line_reconnecting", (("sdk_err", "i"),)),
    ("line_resumed", (("offline_ms", "l"),)),
)

EVENT_NAMES = frozenset(name for name, _ in EVENTS)

_CTYPE = {"s": ctypes.c_char_p, "b": ctypes.c_char_p, "i": ctypes.c_int32, "l": ctypes.c_int64}

# One CFUNCTYPE per member: void (*)(void *ud, ...).
PROTOTYPES = {
    name: ctypes.CFUNCTYPE(None, ctypes.c_void_p, *(_CTYPE[kind] for _, kind in args))
    for name, args in EVENTS
}


class Callbacks(ctypes.Structure):
    """struct crvm_callbacks: one function pointer per event; NULL ignores the event."""

    _fields_ = [(name, PROTOTYPES[name]) for name, _ in EVENTS]


class _Handle(ctypes.Structure):
    """The opaque struct crvm_client; only pointers to it are used."""


HANDLE = ctypes.POINTER(_Handle)

_c_str = ctypes.c_char_p
_i32 = ctypes.c_int32
_SIGNATURES = {
    "crvm_create": (_i32, [_c_str, ctypes.POINTER(Callbacks), ctypes.c_size_t, ctypes.c_void_p,
                           ctypes.POINTER(HANDLE)]),
    "crvm_set_option": (_i32, [HANDLE, _c_str, _c_str]),
    "crvm_poll": (_i32, [HANDLE, _i32]),
    "crvm_destroy": (None, [HANDLE]),
    "crvm_login": (_i32, [HANDLE, _c_str, _c_str, _c_str, _c_str, _c_str, _c_str]),
    "crvm_logout": (_i32, [HANDLE]),
    "crvm_network_changed": (_i32, [HANDLE]),
    "crvm_set_dnd_status": (_i32, [HANDLE, _i32, _c_str]),
    "crvm_get_user_status": (_i32, [HANDLE, _c_str]),
    "crvm_start_user_status_notify": (_i32, [HANDLE, _c_str]),
    "crvm_stop_user_status_notify": (_i32, [HANDLE, _c_str]),
    "crvm_create_meeting": (_i32, [HANDLE, _c_str, _i32, _c_str]),
    "crvm_destroy_meeting": (_i32, [HANDLE, _i32, _c_str]),
    "crvm_get_meetings": (_i32, [HANDLE, _c_str]),
    "crvm_call": (_i32, [HANDLE, _c_str, _c_str, _c_str, _c_str, ctypes.c_char_p,
                         ctypes.c_size_t]),
    "crvm_accept_call": (_i32, [HANDLE, _c_str, _c_str, _c_str, _c_str]),
    "crvm_reject_call": (_i32, [HANDLE, _c_str, _c_str, _c_str]),
    "crvm_hungup_call": (_i32, [HANDLE, _c_str, _c_str, _c_str]),
    "crvm_send_cmd": (_i32, [HANDLE, _c_str, _c_str, ctypes.c_char_p, ctypes.c_size_t]),
    "crvm_send_buffer": (_i32, [HANDLE, _c_str, _c_str, ctypes.c_char_p, ctypes.c_size_t]),
    "crvm_send_file": (_i32, [HANDLE, _c_str, _c_str, ctypes.c_char_p, ctypes.c_size_t]),
    "crvm_cancel_send": (_i32, [HANDLE, _c_str]),
    "crvm_err_str": (_c_str, [_i32]),
    "crvm_version": (_c_str, []),
}


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
        for name, (restype, argtypes) in _SIGNATURES.items():
            fn = getattr(dll, name)
            fn.restype = restype
            fn.argtypes = argtypes
        return dll
    raise LibraryNotFound(
        "cannot load libcrvm.so (set CRVM_LIB to its full path, e.g. "
        "target/debug/libcrvm.so after `cargo build`); tried:\n  " + "\n  ".join(tried))
