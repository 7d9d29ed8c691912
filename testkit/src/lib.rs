//! What crvm's tests and benchmarks share, so that each is written once:
//!
//! - [`tmp`]: temporary directories removed on drop;
//! - [`proc`]: child processes killed on drop, by the kernel if the parent dies, and by
//!   [`proc::catch_signals`] on Ctrl-C;
//! - [`server`]: a `crvm-server` process and the test tenants;
//! - [`cluster`]: a `redis-server` on a Unix socket and `crvm-server` nodes sharing it;
//! - [`sentinel`]: a Redis primary, its replica and three Sentinels on loopback;
//! - [`topology`]: one node or a three-node cluster behind one interface, so that one test
//!   body runs on both;
//! - [`fake`]: the server's side of the protocol without I/O, and a blocking fake server on it.
//!
//! Never a dependency of the library `crvm` itself (only of its tests).

pub mod cluster;
pub mod fake;
pub mod proc;
pub mod sentinel;
pub mod server;
pub mod tmp;
pub mod topology;

pub use cluster::{Cluster, Redis};
pub use crvm_proto::raw::PATIENCE;
pub use proc::Proc;
pub use server::{config, server_bin, Server, TENANTS};
pub use tmp::TmpDir;
pub use topology::Topology;
