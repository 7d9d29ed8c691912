//! Keeps the benches from rotting: `crvm-bench --quick` and `crvm-scale --quick` must run every
//! section to the end against the workspace's `crvm-server`. No timing or memory figure is
//! asserted. The anchors (socat, nats-server, redis-server, libnats-dev) run when they are
//! installed; otherwise their sections or columns say so and the tests still pass.
//!
//! The server binary is taken from the same target directory as the benches. `cargo test
//! --workspace` builds it (every workspace binary is built before any test runs); with
//! `cargo test -p crvm-bench` alone, build it first: `cargo build -p crvm-server`.

use std::path::PathBuf;
use std::process::Command;

/// Runs `bench --quick` against the workspace's server; returns its stdout after checking that
/// it succeeded and ended with "done".
fn quick_run(bench: &str) -> String {
    let bench = PathBuf::from(bench);
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
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} --quick failed ({}):\n{stdout}\n{stderr}",
        bench.display(),
        out.status
    );
    assert!(stdout.trim_end().ends_with("done"), "{stdout}");
    stdout
}

fn assert_prints(stdout: &str, words: &[&str]) {
    for w in words {
        assert!(stdout.contains(w), "no {w:?} in:\n{stdout}");
    }
}

#[test]
fn quick_run_prints_every_section() {
    let stdout = quick_run(env!("CARGO_BIN_EXE_crvm-bench"));
    assert_prints(
        &stdout,
        &[
            "(a) bulk relay",
            "(b) call setup",
            "(c) cmd round trip",
            "(d) presence fan-out rate",
            "(e) presence fan-out latency",
            "(f) call invite latency",
            "(g) peak RSS",
            "(h) session resumption",
            "storm:",
            "(j) acked cmd throughput, C clients",
            "(k) emulated links",
            "bob downloads",
            "bob uploads",
        ],
    );
    assert_prints(
        &stdout,
        &["ratio", "p50", "p99", "growth", "msgs/s", "ch/s"],
    );
}

#[test]
fn quick_scale_run_prints_every_section() {
    let stdout = quick_run(env!("CARGO_BIN_EXE_crvm-scale"));
    assert_prints(
        &stdout,
        &[
            "idle session memory",
            "scale:",
            "logins/s",
            "per session",
            "status change",
            "library overhead",
            "events/s",
            "idle client",
        ],
    );
}
