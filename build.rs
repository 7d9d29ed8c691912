//! Generates include/crvm.h from the Rust sources with cbindgen. The header is committed; CI
//! regenerates it and fails on any difference, so header and library never drift apart.

use std::path::Path;

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&dir);
    for watched in ["src", "proto/src", "cbindgen.toml"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    let header = cbindgen::Builder::new()
        .with_crate(root)
        .with_config(config)
        .generate()
        .expect("cbindgen could not generate crvm.h");
    let out = root.join("include").join("crvm.h");
    // Write only on change, so an unchanged header keeps its timestamp (no spurious rebuilds).
    header.write_to_file(out);
}
