//! The crvm wire protocol, shared by libcrvm and crvm-server: frames ([`frame`]), control
//! messages ([`msg`]) and the error table of SPEC §6 ([`error`]). `docs/PROTOCOL.md` is the
//! prose description of the same thing.

pub mod error;
pub mod frame;
pub mod msg;

pub use frame::{Decoder, Encoder, Frame, FrameError, Kind};
pub use msg::{ClientMsg, Meeting, ServerMsg, UserStatus, XferKind, PROTOCOL_VERSION};
