//! The C surface. Every export lives in one of the object modules (`client`, `errors`) and runs
//! inside [`guard!`]; argument conversion (`args`), the handle table (`handle`) and the callback
//! table (`callbacks`) are the only places that touch raw pointers.

/// The panic boundary of every export: a panic becomes `$on_panic`, never an unwind into C.
macro_rules! guard {
    ($on_panic:expr, $body:block) => {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| $body)) {
            Ok(v) => v,
            Err(_) => $on_panic,
        }
    };
}

mod args;
mod b64;
mod callbacks;
mod client;
mod errors;
mod handle;
pub use client::CRVM_ID_BUF_LEN;

/// Every item of the header (`include/crvm.h`), for Rust code that goes through the C API as a
/// C app does (the benchmark's library figure): declared once, here, never again by hand.
pub mod c_api {
    pub use super::callbacks::crvm_callbacks;
    pub use super::client::*;
    pub use super::errors::*;
    pub use super::handle::crvm_client;
}
