//! Generates include/crvm.h from the Rust sources with cbindgen, and the bindings' mirrors of
//! it (`codegen/mirrors.rs`): in include/crvm.hpp the C++ wrapper's events, handler setters, error
//! codes and the methods of the plain requests, and for Python the description of the ABI
//! (bindings/python/crvm/_abi.py) and the same methods (in client.py), each in a marked region.
//! All are committed; CI regenerates them and fails on any difference, and `tests/mirrors.rs`
//! checks the committed copies against what `codegen/mirrors.rs` renders, so header, library and
//! bindings never drift apart.
//!
//! `crvm_callbacks` is made by a macro from the events table (`src/events.rs`), which cbindgen
//! cannot see through, so `codegen/mirrors.rs` renders the same table into C itself and it goes
//! right after the includes.
//!
//! It also gives the shared library a versioned SONAME, `libcrvm.so.<major>`, so apps record the
//! ABI they were built against, and puts the matching `libcrvm.so.<major>` link next to cargo's
//! `libcrvm.so` so that apps linked against the build directory run from it.

use std::path::Path;

// The events table: `for_each_event!(m)` calls `m!` with every row.
include!("src/events.rs");

#[path = "codegen/mirrors.rs"]
mod mirrors;

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&dir);
    soname();
    for watched in [
        "src",
        "src/events.rs",
        "proto/src",
        "cbindgen.toml",
        "codegen",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(root)
        .with_config(config)
        .with_after_include(format!("\n{}", mirrors::c_callbacks()))
        .generate()
        .expect("cbindgen could not generate crvm.h");
    let mut header = Vec::new();
    bindings.write(&mut header);
    let header = String::from_utf8(header).expect("cbindgen writes UTF-8");
    write_if_changed(&root.join("include/crvm.h"), &header);

    // The mirrors, where this tree has them (a packaged crate carries neither).
    let hpp = root.join("include/crvm.hpp");
    if let Ok(text) = std::fs::read_to_string(&hpp) {
        let text = splice(
            &hpp,
            &text,
            mirrors::CPP_BEGIN,
            mirrors::CPP_END,
            &mirrors::cpp_region(),
        );
        let (begin, end) = (mirrors::CPP_REQUESTS_BEGIN, mirrors::CPP_REQUESTS_END);
        let text = splice(&hpp, &text, begin, end, &mirrors::cpp_requests(&header));
        let (begin, end) = (mirrors::CPP_SETTERS_BEGIN, mirrors::CPP_SETTERS_END);
        let text = splice(&hpp, &text, begin, end, &mirrors::cpp_setters());
        write_if_changed(&hpp, &text);
        let values = root.join("include/crvm_values.hpp");
        let text = std::fs::read_to_string(&values).expect("include/crvm_values.hpp");
        let (begin, end) = (mirrors::CPP_ERRC_BEGIN, mirrors::CPP_ERRC_END);
        let text = splice(&values, &text, begin, end, &mirrors::cpp_errc(&header));
        write_if_changed(&values, &text);
    }
    let py = root.join("bindings/python/crvm");
    if py.is_dir() {
        write_if_changed(&py.join("_abi.py"), &mirrors::python_abi(&header));
        let client = py.join("client.py");
        let text = std::fs::read_to_string(&client).expect("bindings/python/crvm/client.py");
        let (begin, end) = (mirrors::PY_REQUESTS_BEGIN, mirrors::PY_REQUESTS_END);
        let text = splice(&client, &text, begin, end, &mirrors::py_requests(&header));
        write_if_changed(&client, &text);
    }
}

/// `text` of `path` with its generated region rewritten.
fn splice(path: &Path, text: &str, begin: &str, end: &str, region: &str) -> String {
    mirrors::splice(text, begin, end, region)
        .unwrap_or_else(|| panic!("{} lost its {begin:?} ... {end:?} lines", path.display()))
}

/// Writes only on change, so an unchanged file keeps its timestamp (no spurious rebuilds).
fn write_if_changed(path: &Path, text: &str) {
    if std::fs::read_to_string(path).ok().as_deref() != Some(text) {
        std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

/// `-Wl,-soname,libcrvm.so.<major>` for the cdylib, plus the `libcrvm.so.<major> -> libcrvm.so`
/// link in the profile directory (target/<profile>/), where cargo writes the library after this
/// script runs. The link is relative, so it stays valid if the target directory moves.
fn soname() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").expect("cargo sets the version");
    let name = format!("libcrvm.so.{major}");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return;
    }
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{name}");
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    // OUT_DIR is target/<profile>/build/crvm-<hash>/out.
    let Some(profile_dir) = Path::new(&out).ancestors().nth(3) else {
        return;
    };
    let link = profile_dir.join(&name);
    if std::fs::read_link(&link).ok().as_deref() != Some(Path::new("libcrvm.so")) {
        let _ = std::fs::remove_file(&link);
        if let Err(e) = std::os::unix::fs::symlink("libcrvm.so", &link) {
            println!("cargo:warning=could not create {}: {e}", link.display());
        }
    }
}
