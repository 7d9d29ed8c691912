//! The README's CLI snippet (the ```sh block after "**CLI.**") works as pasted: it runs under
//! `sh -e` against a fresh `crvm-server --dev`, with `crvm` on the PATH and only CRVM_SERVER set
//! from outside (the snippet leaves the address to the environment or the default).

mod common;

use common::{Run, Server, TmpDir, CRVM};
use std::path::Path;
use std::process::Command;

fn snippet() -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let after = &readme[readme.find("**CLI.**").expect("no **CLI.** paragraph")..];
    let start = after
        .find("```sh\n")
        .expect("no ```sh block after **CLI.**")
        + 6;
    let len = after[start..].find("```").expect("unterminated block");
    after[start..start + len].to_owned()
}

#[test]
fn readme_cli_snippet_runs_as_pasted() {
    let script = snippet();
    assert!(
        !script.contains("--server"),
        "the snippet should leave the address to CRVM_SERVER or the default:\n{script}"
    );
    assert!(script.lines().filter(|l| l.starts_with("crvm ")).count() >= 3);

    let srv = Server::start();
    let cwd = TmpDir::new();
    let bin_dir = Path::new(CRVM).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("sh");
    for (k, _) in std::env::vars() {
        if k.starts_with("CRVM_") {
            cmd.env_remove(k);
        }
    }
    let r = Run::from(
        cmd.args(["-e", "-c", &script])
            .env("PATH", path)
            .env("CRVM_SERVER", &srv.addr)
            .current_dir(&cwd.0)
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 0, "script:\n{script}\n{r:?}");
    assert!(r.stdout.contains("logged in as alice\n"), "{}", r.stdout);
    assert!(
        r.stdout.contains("\"weekly sync\"  by alice"),
        "{}",
        r.stdout
    );
    let last: serde_json::Value = serde_json::from_str(r.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "status");
    assert_eq!(last["userID"], "alice");
}
