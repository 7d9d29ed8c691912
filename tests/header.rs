//! The committed header exposes only crvm's own names: every macro is `CRVM_*` or
//! `CRVIDEOSDK_*`, every function `crvm_*` (a header that leaked `WINDOW` or `PATH_MAX` into
//! every app that includes it would be a bug).

#[test]
fn header_names_are_all_prefixed() {
    let header = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/crvm.h"))
        .expect("include/crvm.h");
    let mut macros = 0;
    for line in header.lines() {
        if let Some(rest) = line.strip_prefix("#define ") {
            let name = rest.split_whitespace().next().unwrap();
            assert!(
                name.starts_with("CRVM_") || name.starts_with("CRVIDEOSDK_"),
                "unprefixed macro {name}"
            );
            macros += 1;
        }
        if line.starts_with("int32_t ") || line.starts_with("void ") || line.starts_with("const ") {
            let name = line
                .split('(')
                .next()
                .unwrap()
                .split([' ', '*'])
                .next_back()
                .unwrap();
            assert!(name.starts_with("crvm_"), "unprefixed function {name}");
        }
    }
    // The error table (51 codes), the include guard and CRVM_ID_BUF_LEN.
    assert_eq!(macros, 53);
}
