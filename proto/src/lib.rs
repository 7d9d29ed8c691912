//! The crvm wire protocol, shared by libcrvm and crvm-server: frames ([`frame`]), control
//! messages and their validation ([`msg`]), the out-queue both ends write through ([`outq`]),
//! and the error table of docs/API.md §6 ([`error`]). With the feature `raw`, [`raw`] is a protocol
//! peer for tests and benchmarks. `docs/PROTOCOL.md` is the prose description of the same thing.

pub mod error;
pub mod frame;
pub mod hot;
pub mod msg;
pub mod outq;
#[cfg(feature = "raw")]
pub mod raw;

pub use error::Code;
pub use frame::{Decoder, Encoder, Frame, FrameError, FrameRef, Kind};
pub use hot::Json;
pub use msg::{
    ClientMsg, Meeting, Op, Outcome, ServerMsg, SizeLimits, UserStatus, XferKind, PROTOCOL_VERSION,
};
pub use outq::{
    limit_unsent, limit_unsent_to, unsent_for_rate, Batch, Out, OutQueue, Payload, Unsent,
};
