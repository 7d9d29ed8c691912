//! Keeps `crvm-scale` from rotting: `crvm-scale --quick` must run every section to the end
//! against the workspace's `crvm-server`. No timing or memory figure is asserted.
//!
//! The server binary is taken from the same target directory as the bench (see quick.rs).
//! nats-server and redis-server are used when installed; without them their columns read
//! "not installed".

use std::path::PathBuf;
use std::process::Command;

#[test]
fn quick_scale_run_prints_every_section() {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_crvm-scale"));
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
        "crvm-scale --quick failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    for section in [
        "idle session memory",
        "scale:",
        "logins/s",
        "per session",
        "status change",
        "library overhead",
        "events/s",
        "idle client",
    ] {
        assert!(stdout.contains(section), "no {section:?} in:\n{stdout}");
    }
    assert!(stdout.trim_end().ends_with("done"), "{stdout}");
}
