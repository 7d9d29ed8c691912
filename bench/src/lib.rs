//! What the two benchmark binaries, `crvm-bench` and `crvm-scale`, share.

pub mod wire;
