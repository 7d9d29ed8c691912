"""crvm.Error: a request the library refused before sending it (a non-zero C return)."""

from __future__ import annotations

from typing import Dict, Optional, Type

from . import _lib
from . import codes


def err_str(code: int) -> str:
    """The library's static English text for an error code (crvm_err_str)."""
    text: bytes = _lib.lib().crvm_err_str(code)
    return text.decode("utf-8", "replace")


class Error(Exception):
    """A synchronous refusal. ``code`` is the CRVIDEOSDK_* code, ``text`` its crvm_err_str.

    ``Error(code)`` builds the subclass that matches the code (e.g. ``Error(12)`` is a
    ``NotLoggedIn``), so either the base class or a subclass can be caught.
    """

    code: int
    text: str

    def __new__(cls, code: int, text: Optional[str] = None) -> Error:
        if cls is Error:
            cls = _BY_CODE.get(code, Error)
        return super().__new__(cls, code, text)

    def __init__(self, code: int, text: Optional[str] = None) -> None:
        self.code = code
        self.text = text if text is not None else err_str(code)
        super().__init__(code, self.text)

    def __str__(self) -> str:
        return f"{self.text} ({self.code})"


class InvalidParam(Error):
    """5: a bad argument (NULL/empty required field, over-long field, bad JSON, NUL in a str,
    an int out of int32 range, a closed client...)."""


class LoginStateError(Error):
    """9: login while logging in or logged in; set_option while logged in."""


class NotLoggedIn(Error):
    """12: the request needs a logged-in client."""


class DataError(Error):
    """13 bad base64, 1100 cmd too large, 1101 buffer too large, 1103 file too large."""


class FileError(Error):
    """1400 file does not exist, 1401 file read failed (send_file)."""


_BY_CODE: Dict[int, Type[Error]] = {
    codes.CRVIDEOSDK_MEETPARAM_ERR: InvalidParam,
    codes.CRVIDEOSDK_LOGINSTATE_ERROR: LoginStateError,
    codes.CRVIDEOSDK_NOT_LOGIN: NotLoggedIn,
    codes.CRVIDEOSDK_BASE64_COV_ERR: DataError,
    codes.CRVIDEOSDK_SENDCMD_LARGE: DataError,
    codes.CRVIDEOSDK_SENDBUFFER_LARGE: DataError,
    codes.CRVIDEOSDK_SENDFILE_FILEINERROR: DataError,
    codes.CRVIDEOSDK_FILE_NOT_EXIST: FileError,
    codes.CRVIDEOSDK_FILE_READ_ERR: FileError,
}


def check(rc: int) -> None:
    """Raises the matching Error for a non-zero return code."""
    if rc != 0:
        raise Error(rc)
