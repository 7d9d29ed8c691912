//! Keeps the bench from rotting: `crvm-bench --quick` must run every section to the end against
//! the workspace's `crvm-server`. No timing is asserted. The anchors (socat, nats-server,
//! redis-server) run when they are installed; otherwise the sections say "skipped: TOOL not
//! installed" and the test still passes.
//!
//! The server binary is taken from the same target directory as the bench. `cargo test
//! --workspace` builds it (every workspace binary is built before any test runs); with
//! `cargo test -p crvm-bench` alone, build it first: `cargo build -p crvm-server`.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn quick_run_prints_every_section() {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_crvm-bench"));
    let server = bench.with_file_name("crvm-server");
    assert!(
        server.is_file(),
        "{} is missing: run `cargo test --workspace`, or `cargo build -p crvm-server` first",
        server.display()
    );
    let out = Command::new(&bench)
        .arg("--quick")
        .arg("--server")
        .arg(&server)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "crvm-bench --quick failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    for section in [
        "(a) bulk relay",
        "(b) call setup",
        "(c) cmd round trip",
        "(d) presence fan-out rate",
        "(e) presence fan-out latency",
        "(f) call invite latency",
        "(g) peak RSS",
    ] {
        assert!(stdout.contains(section), "no {section:?} in:\n{stdout}");
    }
    for figure in ["ratio", "p50", "p99", "growth", "msgs/s", "ch/s"] {
        assert!(stdout.contains(figure), "no {figure:?} in:\n{stdout}");
    }
    assert!(stdout.trim_end().ends_with("done"), "{stdout}");
}
