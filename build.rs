//! Generates include/crvm.h from the Rust sources with cbindgen. The header is committed; CI
//! regenerates it and fails on any difference, so header and library never drift apart.
//!
//! `crvm_callbacks` is made by a macro from the events table (`src/events.rs`), which cbindgen
//! cannot see through, so this script renders the same table into C itself and puts it right
//! after the includes.

//!
//! It also gives the shared library a versioned SONAME, `libcrvm.so.<major>`, so apps record the
//! ABI they were built against, and puts the matching `libcrvm.so.<major>` link next to cargo's
//! `libcrvm.so` so that apps linked against the build directory run from it.

use std::path::Path;

// The events table: `for_each_event!(m)` calls `m!` with every row.
include!("src/events.rs");

/// The C type of an argument of each kind of the table.
macro_rules! c_type {
    (Id) => {
        "const char *"
    };
    (Str) => {
        "const char *"
    };
    (Json) => {
        "const char *"
    };
    (B64) => {
        "const char *"
    };
    (Code) => {
        "int32_t "
    };
    (Rslt) => {
        "int32_t "
    };
    (I32) => {
        "int32_t "
    };
    (I64) => {
        "int64_t "
    };
}

/// The table as the C declaration of `crvm_callbacks`, with the rows' documentation in the
/// header's doxygen style.
macro_rules! render_callbacks {
    (
        $(#[doc = $sdoc:literal])* struct crvm_callbacks;
        $(
            $(#[doc = $vdoc:literal])*
            $variant:ident { $($field:ident : $fty:ty),* $(,)? } on $scrut:tt {
                $(
                    $(#[doc = $cdoc:literal])*
                    $pat:pat => $cb:ident ( $($arg:ident : $kind:ident = $e:expr),* $(,)? )
                ),* $(,)?
            }
        )*
    ) => {
        concat!(
            "/**\n", $(" *", $sdoc, "\n",)* " */\n",
            "typedef struct crvm_callbacks {\n",
            $($(
                $("  /**", $cdoc, " */\n",)*
                "  void (*", stringify!($cb), ")(void *ud", $(", ", c_type!($kind), stringify!($arg),)* ");\n",
            )*)*
            "} crvm_callbacks;\n"
        )
    };
}

/// `crvm_callbacks` in C.
const CALLBACKS_C: &str = for_each_event!(render_callbacks);

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&dir);
    soname();
    for watched in ["src", "src/events.rs", "proto/src", "cbindgen.toml"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let config = cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    let header = cbindgen::Builder::new()
        .with_crate(root)
        .with_config(config)
        .with_after_include(format!(
            "\n{}",
            CALLBACKS_C.replace(" */\n  /**", "\n   *").trim_end()
        ))
        .generate()
        .expect("cbindgen could not generate crvm.h");
    let out = root.join("include").join("crvm.h");
    // Write only on change, so an unchanged header keeps its timestamp (no spurious rebuilds).
    header.write_to_file(out);
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
