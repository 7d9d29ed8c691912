//! libcrvm: the CloudroomVideoMgr API as a callback-style C ABI (docs/API.md §2).
//!
//! `core` is the Rust client (worker thread, state machine, dispatcher) and never sees a raw
//! pointer; `ffi` is the C surface, which converts and validates every argument.

#[macro_use]
mod events;
pub mod core;
mod ffi;

pub use ffi::CRVM_ID_BUF_LEN;

/// The C API itself, callable from Rust: not for Rust apps (use [`Client`]), but for a
/// benchmark that measures what a C app gets.
#[doc(hidden)]
pub use ffi::c_api;

pub use crate::core::{Client, Code, Event, EventHandler, LoginParams};
