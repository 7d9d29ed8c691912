//! Conversion of C string arguments: NULL, length and UTF-8 are checked here, once.

use crvm_proto::error::{code, CRVIDEOSDK_MEETPARAM_ERR};
use crvm_proto::Code;
use std::ffi::{c_char, CStr};

/// Whether a NULL pointer is allowed (and read as "").
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Null {
    Refuse,
    Empty,
}

/// Borrows a NUL-terminated UTF-8 argument of at most `max` bytes. Never reads more than
/// `max + 1` bytes looking for the terminator, so a huge string costs nothing.
///
/// # Safety
/// `p` is NULL or points to memory readable up to its NUL or `max + 1` bytes.
pub(crate) unsafe fn str_arg<'a>(
    p: *const c_char,
    null: Null,
    max: usize,
) -> Result<&'a str, Code> {
    let bad = code(CRVIDEOSDK_MEETPARAM_ERR);
    if p.is_null() {
        return match null {
            Null::Empty => Ok(""),
            Null::Refuse => Err(bad),
        };
    }
    let len = libc::strnlen(p, max.saturating_add(1));
    if len > max {
        return Err(bad);
    }
    let bytes = CStr::from_ptr(p).to_bytes();
    std::str::from_utf8(bytes).map_err(|_| bad)
}

/// Converts a `Result` of the core into the C return code.
pub(crate) fn rc(r: Result<(), Code>) -> i32 {
    crvm_proto::error::code_of(&r)
}
