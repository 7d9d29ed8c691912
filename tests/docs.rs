//! The reference lives in the repository: docs/API.md names every function, event, error code
//! and option of the library, and no file of the repository points outside it (to a contract
//! kept elsewhere, by path or by section number).

// The table and the generator, exactly as build.rs sees them.
include!("../src/events.rs");
#[path = "../codegen/mirrors.rs"]
#[allow(dead_code)]
mod mirrors;

use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_api_reference_names_everything_in_the_header() {
    let api = read("docs/API.md");
    let header = read("include/crvm.h");
    let mut missing = Vec::new();
    let functions = mirrors::header_functions(&header);
    assert_eq!(functions.len(), 24);
    for (name, _, _) in &functions {
        if !api.contains(&format!("`{name}`")) {
            missing.push(name.clone());
        }
    }
    assert_eq!(mirrors::TABLE.callbacks.len(), 38);
    for cb in mirrors::TABLE.callbacks {
        if !api.contains(&format!("| `{}` |", cb.name)) {
            missing.push(format!("event {}", cb.name));
        }
        for (arg, _) in cb.args {
            if !api.contains(&format!("`{arg}`")) {
                missing.push(format!("argument {arg} of {}", cb.name));
            }
        }
    }
    let codes = mirrors::header_codes(&header);
    assert_eq!(codes.len(), 51);
    for (name, value, _) in codes {
        if !api.contains(&format!("| `CRVIDEOSDK_{name}` | {value} |")) {
            missing.push(format!("code CRVIDEOSDK_{name} {value}"));
        }
    }
    // The options: every key the library accepts (the arms of Options::set, which assign to
    // `self` or open a block; the arms of a value's own match do neither).
    let options = read("src/core/options.rs");
    let mut keys = 0;
    for line in options.lines() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix('"') {
            if let Some((key, tail)) = rest.split_once('"') {
                let arm = tail.trim_start().strip_prefix("=>").map(str::trim_start);
                if arm.is_some_and(|a| a.starts_with('{') || a.starts_with("self.")) {
                    keys += 1;
                    if !api.contains(&format!("| `{key}` |")) {
                        missing.push(format!("option {key}"));
                    }
                }
            }
        }
    }
    assert!(
        keys >= 10,
        "found only {keys} option keys in src/core/options.rs"
    );
    // The JSON keys of the status and meeting objects.
    for key in [
        "userID",
        "userStatus",
        "DNDType",
        "ID",
        "pswd",
        "subject",
        "pubMeetUrl",
        "creator",
        "memberCount",
        "startTime",
    ] {
        if !api.contains(&format!("| `{key}` |")) {
            missing.push(format!("JSON key {key}"));
        }
    }
    assert!(missing.is_empty(), "docs/API.md lacks: {missing:?}");
}

/// The files git tracks (what a clone has), when this is a git checkout.
fn tracked_files() -> Option<Vec<PathBuf>> {
    let out = std::process::Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(root())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let names = String::from_utf8(out.stdout).ok()?;
    Some(
        names
            .split('\0')
            .filter(|n| !n.is_empty())
            .map(|n| root().join(n))
            .filter(|p| p.is_file())
            .collect(),
    )
}

/// Every text file of the repository (not build output, not git's own files), for a copy
/// that is not a git checkout.
fn repository_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            let skip = name.starts_with('.') && name != ".ci"
                || name == "target"
                || name.starts_with("build")
                || name == "node_modules"
                || name == "__pycache__"
                || name == "crvm-data";
            if !skip {
                repository_files(&path, out);
            }
        } else {
            out.push(path);
        }
    }
}

#[test]
fn no_file_points_outside_the_repository() {
    // Spelled in pieces so that this file does not match itself.
    let outside = ["..", "/shared"].concat();
    let citation = ["SPEC", " §"].concat();
    let mut files = tracked_files().unwrap_or_default();
    if files.is_empty() {
        repository_files(root(), &mut files);
    }
    assert!(files.len() > 100, "only {} files found", files.len());
    let mut bad = Vec::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue; // not text
        };
        let rel = file.strip_prefix(root()).unwrap().display().to_string();
        for (n, line) in text.lines().enumerate() {
            if line.contains(&outside) || line.contains(&citation) {
                bad.push(format!("{rel}:{}: {}", n + 1, line.trim()));
            }
        }
        // A citation broken across two lines of a comment: "SPEC" ending one, "§" starting the
        // next.
        let lines: Vec<&str> = text.lines().collect();
        for (n, pair) in lines.windows(2).enumerate() {
            let next = pair[1]
                .trim_start()
                .trim_start_matches(['/', '!', '*', '#', ' ']);
            if pair[0].trim_end().ends_with("SPEC") && next.starts_with('§') {
                bad.push(format!("{rel}:{}: {} / {}", n + 1, pair[0].trim(), next));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "cite docs/API.md (or another document of the repository) instead:\n{}",
        bad.join("\n")
    );
}
