//! The bindings' mirrors of the header are generated (`codegen/mirrors.rs`, run by `build.rs`)
//! and committed: the C++ wrapper's `crvm::Event`, `crvm::Handlers` with the trampolines, the
//! handler setters and the methods of the plain requests (marked regions of `include/crvm.hpp`)
//! and its `crvm::Errc` (in `include/crvm_values.hpp`), and the Python binding's `EVENTS`
//! and `FUNCTIONS` (`bindings/python/crvm/_abi.py`) and methods of the plain requests (a marked
//! region of `client.py`). Here the committed copies are checked against what the generator
//! renders (no hand edit, no stale copy); every function of a client must have a method in both
//! bindings; and, independently of the generator, the event mirrors are parsed and compared
//! with the header: the same members, in the same order, with the same arguments.

// The table and the generator, exactly as build.rs sees them.
include!("../src/events.rs");
#[path = "../codegen/mirrors.rs"]
mod mirrors;

use std::path::Path;

/// The C type of an argument, reduced to what the mirrors distinguish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Str,
    I32,
    I64,
}

/// One callback: its name and its arguments after `ud` (name, type).
type Member = (String, Vec<(String, Ty)>);

fn read(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The text between `start` and the next `end` after it.
fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text.find(start).unwrap_or_else(|| panic!("no {start:?}")) + start.len();
    let to = text[from..]
        .find(end)
        .unwrap_or_else(|| panic!("no {end:?}"))
        + from;
    &text[from..to]
}

fn c_type(t: &str) -> Ty {
    match t.trim() {
        "const char *" | "const char*" | "Str" => Ty::Str,
        "int32_t" => Ty::I32,
        "int64_t" => Ty::I64,
        other => panic!("unexpected argument type {other:?}"),
    }
}

/// `type name` → (name, type): the name is the last word.
fn arg(decl: &str) -> (String, Ty) {
    let decl = decl.trim();
    let split = decl
        .rfind([' ', '*'])
        .unwrap_or_else(|| panic!("no name in {decl:?}"));
    let (ty, name) = decl.split_at(split + 1);
    (name.trim().to_owned(), c_type(ty))
}

/// The header's `crvm_callbacks` members: `void (*name)(void *ud, ...);`.
fn header_members() -> Vec<Member> {
    let h = read("include/crvm.h");
    let body = between(&h, "typedef struct crvm_callbacks {", "} crvm_callbacks;");
    body.split(';')
        .filter_map(|decl| {
            let at = decl.find("void (*")?;
            let decl = &decl[at + "void (*".len()..];
            let (name, rest) = decl.split_once(")(")?;
            let params = rest.trim_end().strip_suffix(')')?;
            let mut args: Vec<&str> = params.split(',').collect();
            assert_eq!(args.remove(0).trim(), "void *ud", "{name}: first argument");
            Some((name.to_owned(), args.into_iter().map(arg).collect()))
        })
        .collect()
}

/// The handler slots of `crvm::Handlers` in crvm.hpp, in order: `using <name>_fn = ...`.
fn cpp_handlers() -> Vec<String> {
    let h = read("include/crvm.hpp");
    let body = between(&h, "struct Handlers {", "\n};");
    body.split(';')
        .filter_map(|decl| {
            let name = decl.trim().strip_prefix("using ")?.split_once("_fn =")?.0;
            Some(name.to_owned())
        })
        .collect()
}

/// The trampolines crvm.hpp registers: `cb.name = [](void *ud, <C arguments>) {`.
fn cpp_registrations() -> Vec<Member> {
    let h = read("include/crvm.hpp");
    let body = between(
        &h,
        "inline void set_trampolines(crvm_callbacks &cb) {",
        "\n}",
    );
    body.split("cb.")
        .skip(1)
        .map(|stmt| {
            let (name, rest) = stmt.split_once(" =").expect("cb.name =");
            let params = between(rest, "[](", ") {");
            let mut args: Vec<&str> = params.split(',').collect();
            assert_eq!(args.remove(0).trim(), "void *ud", "{name}: first argument");
            (name.to_owned(), args.into_iter().map(arg).collect())
        })
        .collect()
}

/// Python's `EVENTS`: `("name", (("arg", "kind"), ...))`, kinds s/b (str), i, l. The string
/// literals are read in order with their tuple depth: names at depth 2, arguments at depth 4.
fn python_events() -> Vec<Member> {
    let py = read("bindings/python/crvm/_abi.py");
    let body = between(&py, "EVENTS = (", "\n)\n");
    let (mut depth, mut out, mut pending) = (1, Vec::<Member>::new(), Vec::new());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            '#' => {
                chars.by_ref().take_while(|&c| c != '\n').for_each(drop);
            }
            '"' => {
                let lit: String = chars.by_ref().take_while(|&c| c != '"').collect();
                match depth {
                    2 => out.push((lit, Vec::new())),
                    4 => pending.push(lit),
                    d => panic!("string {lit:?} at depth {d}"),
                }
                if pending.len() == 2 {
                    let kind = pending.pop().unwrap();
                    let name = pending.pop().unwrap();
                    let ty = match kind.as_str() {
                        "s" | "b" => Ty::Str,
                        "i" => Ty::I32,
                        "l" => Ty::I64,
                        k => panic!("unknown kind {k:?}"),
                    };
                    out.last_mut().expect("a name first").1.push((name, ty));
                }
            }
            _ => {}
        }
    }
    out
}

#[test]
fn the_committed_mirrors_are_what_the_table_renders() {
    let header = read("include/crvm.h");
    assert!(
        header.contains(&mirrors::c_callbacks()),
        "include/crvm.h: crvm_callbacks is stale (cargo build rewrites it)"
    );
    let regions = [
        (
            "include/crvm.hpp",
            mirrors::CPP_BEGIN,
            mirrors::CPP_END,
            mirrors::cpp_region(),
        ),
        (
            "include/crvm.hpp",
            mirrors::CPP_REQUESTS_BEGIN,
            mirrors::CPP_REQUESTS_END,
            mirrors::cpp_requests(&header),
        ),
        (
            "include/crvm.hpp",
            mirrors::CPP_SETTERS_BEGIN,
            mirrors::CPP_SETTERS_END,
            mirrors::cpp_setters(),
        ),
        (
            "include/crvm_values.hpp",
            mirrors::CPP_ERRC_BEGIN,
            mirrors::CPP_ERRC_END,
            mirrors::cpp_errc(&header),
        ),
        (
            "bindings/python/crvm/client.py",
            mirrors::PY_REQUESTS_BEGIN,
            mirrors::PY_REQUESTS_END,
            mirrors::py_requests(&header),
        ),
    ];
    for (file, begin, end, region) in regions {
        let text = read(file);
        let spliced = mirrors::splice(&text, begin, end, &region)
            .unwrap_or_else(|| panic!("{file}: no {begin:?} region"));
        assert!(
            spliced == text,
            "{file}: the region {begin:?} is stale or edited (cargo build rewrites it)"
        );
    }
    assert!(
        read("bindings/python/crvm/_abi.py") == mirrors::python_abi(&header),
        "bindings/python/crvm/_abi.py is stale or edited (cargo build rewrites it)"
    );
}

#[test]
fn every_function_of_a_client_has_a_method_in_each_binding() {
    let header = read("include/crvm.h");
    let (hpp, py) = (
        read("include/crvm.hpp"),
        read("bindings/python/crvm/client.py"),
    );
    let functions = mirrors::header_functions(&header);
    let of_a_client = functions.iter().filter(|(_, _, args)| {
        args.first()
            .is_some_and(|(_, t)| t == "struct crvm_client *")
    });
    let mut n = 0;
    for (c_name, _, _) in of_a_client {
        let name = &c_name["crvm_".len()..];
        // crvm_destroy is the C++ destructor and Python's close().
        let (cpp_name, py_name) = match name {
            "destroy" => ("~Client", "close"),
            _ => (name, name),
        };
        assert!(
            hpp.contains(&format!(" {cpp_name}(")),
            "crvm.hpp: no {cpp_name}()"
        );
        assert!(
            py.contains(&format!("    def {py_name}(")),
            "client.py: no {py_name}()"
        );
        n += 1;
    }
    assert_eq!(n, 21);
    // The generator's lists of methods written by hand name functions that exist.
    for name in mirrors::CPP_BY_HAND.iter().chain(mirrors::PY_BY_HAND) {
        assert!(
            functions.iter().any(|f| f.0 == *name),
            "no {name} in the header"
        );
    }
}

#[test]
fn the_cpp_wrapper_mirrors_the_header() {
    let header = header_members();
    assert!(header.len() >= 36, "{} members", header.len());
    // Every member has a trampoline with the header's argument names and types, in order.
    assert_eq!(cpp_registrations(), header);
    // And a handler slot (with its on_<name> setter) of the same name, in order.
    let names: Vec<String> = header.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(cpp_handlers(), names);
    let hpp = read("include/crvm.hpp");
    for name in &names {
        assert!(hpp.contains(&format!("void on_{name}(")), "no on_{name}");
    }
    // The error codes: one Errc per CRVIDEOSDK_ macro of the header.
    let values = read("include/crvm_values.hpp");
    let codes = mirrors::header_codes(&read("include/crvm.h"));
    assert_eq!(codes.len(), 51);
    for (name, value, _) in codes {
        assert!(
            values.contains(&format!("  {name} = {value},")),
            "no Errc::{name}"
        );
    }
}

#[test]
fn the_python_binding_mirrors_the_header() {
    // Python names `data_base64` `data` (it hands over bytes); everything else is the header's.
    let header: Vec<Member> = header_members()
        .into_iter()
        .map(|(n, args)| {
            let args = args
                .into_iter()
                .map(|(a, t)| (if a == "data_base64" { "data".into() } else { a }, t))
                .collect();
            (n, args)
        })
        .collect();
    assert_eq!(python_events(), header);
}

#[test]
fn the_parsers_see_what_they_should() {
    // A guard against a parser that silently finds nothing: spot-check known members.
    let h = header_members();
    assert_eq!(h[0].0, "login_success");
    assert_eq!(
        h[0].1,
        [("usr_id".into(), Ty::Str), ("cookie".into(), Ty::Str)]
    );
    let progress = h.iter().find(|m| m.0 == "send_progress").unwrap();
    assert_eq!(progress.1[1], ("sended_len".into(), Ty::I64));
    assert_eq!(python_events().len(), h.len());
    // The prototypes Python's FUNCTIONS are made from.
    let f = mirrors::header_functions(&read("include/crvm.h"));
    assert_eq!(f.len(), 24, "{f:?}");
    let create = &f[0];
    assert_eq!(
        (create.0.as_str(), create.1.as_str()),
        ("crvm_create", "int32_t")
    );
    assert_eq!(
        create.2[1],
        ("callbacks".into(), "const crvm_callbacks *".into())
    );
    assert_eq!(
        create.2[4],
        ("out_client".into(), "struct crvm_client **".into())
    );
    let call = f.iter().find(|f| f.0 == "crvm_call").unwrap();
    assert_eq!(call.2[5], ("call_id_out".into(), "char *".into()));
    assert_eq!(
        f.last().unwrap(),
        &("crvm_version".into(), "const char *".into(), vec![])
    );
}
