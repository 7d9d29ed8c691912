//! Conversion of C string arguments: NULL, length and UTF-8 are checked here, once.

use crvm_proto::error::{code, CRVIDEOSDK_MEETPARAM_ERR};
use crvm_proto::Code;
use std::ffi::c_char;

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
    let bytes = bytes_arg(p, null, max)?;
    std::str::from_utf8(bytes).map_err(|_| code(CRVIDEOSDK_MEETPARAM_ERR))
}

/// As [`str_arg`], without the UTF-8 check: for text whose own decoding checks every byte
/// (base64 data, where a second pass over a large cmd is measurable).
///
/// # Safety
/// As for [`str_arg`].
pub(crate) unsafe fn bytes_arg<'a>(
    p: *const c_char,
    null: Null,
    max: usize,
) -> Result<&'a [u8], Code> {
    if p.is_null() {
        return match null {
            Null::Empty => Ok(b""),
            Null::Refuse => Err(code(CRVIDEOSDK_MEETPARAM_ERR)),
        };
    }
    let len = libc::strnlen(p, max.saturating_add(1));
    if len > max {
        return Err(code(CRVIDEOSDK_MEETPARAM_ERR));
    }
    // SAFETY: `strnlen` found the NUL at `len`, so `len` bytes from `p` are readable.
    Ok(std::slice::from_raw_parts(p.cast::<u8>(), len))
}

/// Converts a `Result` of the core into the C return code.
pub(crate) fn rc(r: Result<(), Code>) -> i32 {
    crvm_proto::error::code_of(&r)
}
