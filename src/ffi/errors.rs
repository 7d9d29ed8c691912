//! Error text and version. The docs/API.md §6 constants in crvm.h come straight from the one error
//! table in `crvm-proto` (cbindgen's `extra_bindings`).

use std::ffi::c_char;

/// Static English text for an error code (docs/API.md §6). Never NULL; unknown codes get
/// "unknown error code". The string must not be freed.
#[no_mangle]
pub extern "C" fn crvm_err_str(code: i32) -> *const c_char {
    guard!(c"internal error".as_ptr(), {
        crvm_proto::error::err_str_nul(code).as_ptr() as *const c_char
    })
}

/// Static library version, e.g. "0.1.0". The string must not be freed.
#[no_mangle]
pub extern "C" fn crvm_version() -> *const c_char {
    guard!(c"".as_ptr(), {
        concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const c_char
    })
}
