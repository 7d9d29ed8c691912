//! The `crvm-server` binary; everything lives in the library (see `lib.rs`).

fn main() {
    std::process::exit(crvm_server::app::main());
}
