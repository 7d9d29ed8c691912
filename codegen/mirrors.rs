// What is generated from the events table (`src/events.rs`) and from the header: the C
// declaration of `crvm_callbacks` (into include/crvm.h), the C++ wrapper's `crvm::Events` and
// its trampolines (a marked region of include/crvm.hpp) and the Python binding's description
// of the ABI (bindings/python/crvm/_abi.py). All three are committed; `build.rs` rewrites them
// on every build and `tests/mirrors.rs` fails when a committed copy differs from what this file
// renders, so no mirror is ever kept by hand.
//
// Used by `build.rs` and by `tests/mirrors.rs`, both of which `include!` the events table
// before this module, so `for_each_event!` is in scope here.

/// How a C argument is made (the table's kinds; see `src/events.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Id,
    Str,
    Json,
    B64,
    Code,
    Rslt,
    #[allow(dead_code)] // a kind of the table that no row uses today
    I32,
    I64,
}

impl Kind {
    /// The C type, spaced so that the argument's name can follow it directly.
    fn c(self) -> &'static str {
        match self {
            Kind::Id | Kind::Str | Kind::Json | Kind::B64 => "const char *",
            Kind::Code | Kind::Rslt | Kind::I32 => "int32_t ",
            Kind::I64 => "int64_t ",
        }
    }

    /// The argument type of the C++ `std::function` (`Str` is crvm.hpp's `const std::string &`).
    fn cpp(self) -> &'static str {
        match self {
            Kind::Id | Kind::Str | Kind::Json | Kind::B64 => "Str",
            _ => self.c().trim_end(),
        }
    }

    /// The Python kind letter: "s" str, "b" base64 handed to Python as bytes, "i"/"l" ints.
    fn py(self) -> &'static str {
        match self {
            Kind::Id | Kind::Str | Kind::Json => "s",
            Kind::B64 => "b",
            Kind::Code | Kind::Rslt | Kind::I32 => "i",
            Kind::I64 => "l",
        }
    }
}

/// One member of `crvm_callbacks`: its name, its documentation lines and its arguments after
/// `void *ud`.
pub struct Callback {
    pub name: &'static str,
    pub doc: &'static [&'static str],
    pub args: &'static [(&'static str, Kind)],
}

/// The struct's documentation and its members, in the table's (the ABI's) order.
pub struct Table {
    pub doc: &'static [&'static str],
    pub callbacks: &'static [Callback],
}

/// The table as data; the Rust-only parts (variants, fields, patterns) are left out.
macro_rules! table_data {
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
        Table {
            doc: &[$($sdoc),*],
            callbacks: &[$($(Callback {
                name: stringify!($cb),
                doc: &[$($cdoc),*],
                args: &[$((stringify!($arg), Kind::$kind)),*],
            }),*),*],
        }
    };
}

pub const TABLE: Table = for_each_event!(table_data);

/// `typedef struct crvm_callbacks {...} crvm_callbacks;` with the rows' documentation in the
/// header's doxygen style.
pub fn c_callbacks() -> String {
    let mut out = String::from("/**\n");
    for line in TABLE.doc {
        out += &format!(" *{line}\n");
    }
    out += " */\ntypedef struct crvm_callbacks {\n";
    for cb in TABLE.callbacks {
        if !cb.doc.is_empty() {
            out += &format!("  /**{} */\n", cb.doc.join("\n   *"));
        }
        out += &format!("  void (*{})(void *ud", cb.name);
        for (name, kind) in cb.args {
            out += &format!(", {}{name}", kind.c());
        }
        out += ");\n";
    }
    out + "} crvm_callbacks;"
}

/// The first and last lines of the generated region of include/crvm.hpp.
pub const CPP_BEGIN: &str = "// BEGIN generated from src/events.rs by build.rs";
pub const CPP_END: &str = "// END generated from src/events.rs";

/// The longest line the C++ and Python renderings aim for.
const WIDTH: usize = 99;

/// `head` and `tail` on one line, or on two (`tail` indented by `indent`) if one is too long.
fn fit(head: &str, tail: &str, indent: &str) -> String {
    if head.len() + 1 + tail.len() <= WIDTH {
        format!("{head} {tail}\n")
    } else {
        format!("{head}\n{indent}{tail}\n")
    }
}

/// The generated region of include/crvm.hpp, markers included: `crvm::Events` (one
/// `std::function` per member) and `detail::set_trampolines`, which points each C member at the
/// trampoline of its `Events` member. The C++ compiler checks every trampoline's signature
/// against the header's member.
pub fn cpp_region() -> String {
    let mut out = format!(
        "{CPP_BEGIN}: do not edit; `cargo build` rewrites it.\n\
         // One std::function per crvm_callbacks member (documented there, in crvm.h), same names,\n\
         // same argument order.\n\
         struct Events {{\n"
    );
    for cb in TABLE.callbacks {
        let args: Vec<String> = cb
            .args
            .iter()
            .map(|(n, k)| format!("{} {n}", k.cpp()))
            .collect();
        let head = format!("  std::function<void({})>", args.join(", "));
        out += &fit(&head, &format!("{};", cb.name), "      ");
    }
    out += "};\n\nnamespace detail {\n\n\
            // Points every member of `cb` at the trampoline of the Events member of that name.\n\
            inline void set_trampolines(crvm_callbacks &cb) {\n";
    for cb in TABLE.callbacks {
        let mut target = format!("&trampoline<&Events::{}", cb.name);
        for (_, kind) in cb.args {
            target += &format!(", {}", kind.c().trim_end());
        }
        out += &fit(
            &format!("  cb.{} =", cb.name),
            &format!("{target}>;"),
            "      ",
        );
    }
    out + &format!("}}\n\n}}  // namespace detail\n{CPP_END}")
}

/// `text` with its region from the line starting with `begin` to the line starting with `end`
/// replaced by `region` (which has both markers); None if a marker is missing.
pub fn splice(text: &str, begin: &str, end: &str, region: &str) -> Option<String> {
    let from = text.find(begin)?;
    let to = from + text[from..].find(end)?;
    let to = to + text[to..].find('\n').unwrap_or(text.len() - to);
    Some(format!("{}{region}{}", &text[..from], &text[to..]))
}

/// One function of the header: name, C return type, arguments (name, C type).
pub type Function = (String, String, Vec<(String, String)>);

/// `type name` split at the start of the name (after the last space or `*`).
fn split_decl(decl: &str) -> (String, String) {
    let at = decl.rfind([' ', '*']).map_or(0, |i| i + 1);
    (decl[..at].trim().to_owned(), decl[at..].to_owned())
}

/// The functions declared in the header's `extern "C"` block, in order.
pub fn header_functions(header: &str) -> Vec<Function> {
    let start = header
        .find("extern \"C\" {")
        .expect("the header's extern \"C\" block");
    let end = start + header[start..].find("}  // extern \"C\"").expect("its end");
    let mut code = String::new();
    let mut rest = &header[start + "extern \"C\" {".len()..end];
    // Without the comments and the preprocessor lines.
    while let Some(open) = rest.find("/*") {
        code += &rest[..open];
        let close = rest[open..].find("*/").expect("a closed comment") + open;
        rest = &rest[close + 2..];
    }
    code += rest;
    let code: String = code
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join(" ");
    code.split(';')
        .map(|d| d.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|d| !d.is_empty())
        .map(|d| {
            let open = d.find('(').unwrap_or_else(|| panic!("not a function: {d}"));
            let (ret, name) = split_decl(&d[..open]);
            let params = d[open + 1..].trim_end_matches(')').trim();
            let args = match params {
                "" | "void" => Vec::new(),
                _ => params
                    .split(',')
                    .map(|p| {
                        let (ty, name) = split_decl(p.trim());
                        (name, ty)
                    })
                    .collect(),
            };
            (name, ret, args)
        })
        .collect()
}

/// Python's name of an argument: the header's, except that base64 arguments arrive as bytes
/// and drop their `_base64` suffix (`data_base64` -> `data`).
fn py_arg(name: &str, kind: Kind) -> &str {
    match kind {
        Kind::B64 => name.strip_suffix("_base64").unwrap_or(name),
        _ => name,
    }
}

/// A Python tuple of `items` (with the trailing comma a one-item tuple needs).
fn py_tuple(items: &[String]) -> String {
    match items {
        [one] => format!("({one},)"),
        _ => format!("({})", items.join(", ")),
    }
}

/// bindings/python/crvm/_abi.py: the callbacks from the table and the functions from `header`
/// (the header as cbindgen rendered it).
pub fn python_abi(header: &str) -> String {
    let mut out = String::from(
        "\"\"\"libcrvm's C ABI (include/crvm.h) as data, for _lib.py to describe to ctypes.\n\
         \n\
         Generated by build.rs (codegen/mirrors.rs) from the events table (src/events.rs) and the\n\
         header's prototypes: do not edit; `cargo build` rewrites it.\n\
         \"\"\"\n\n",
    );
    out += &format!(
        "# The {} members of crvm_callbacks, in the header's order (SPEC §2.3), each with its\n\
         # arguments after `void *ud`. Kinds: \"s\" a string (str), \"i\" int32_t, \"l\" int64_t,\n\
         # \"b\" a base64 string delivered to Python as bytes. The argument names are the header's,\n\
         # except that base64 ones drop their `_base64` suffix (data_base64 -> data).\n\
         EVENTS = (\n",
        TABLE.callbacks.len()
    );
    for cb in TABLE.callbacks {
        let args: Vec<String> = cb
            .args
            .iter()
            .map(|&(n, k)| format!("(\"{}\", \"{}\")", py_arg(n, k), k.py()))
            .collect();
        out += &fit(
            &format!("    (\"{}\",", cb.name),
            &format!("{}),", py_tuple(&args)),
            "     ",
        );
    }
    out +=
        ")\n\n# Every function of the header, in its order: its name, its C return type and its\n\
            # arguments (name, C type).\nFUNCTIONS = (\n";
    for (name, ret, args) in header_functions(header) {
        if args.is_empty() {
            out += &format!("    (\"{name}\", \"{ret}\", ()),\n");
            continue;
        }
        out += &format!("    (\"{name}\", \"{ret}\", (\n");
        for (arg, ty) in args {
            out += &format!("        (\"{arg}\", \"{ty}\"),\n");
        }
        out += "    )),\n";
    }
    out + ")\n"
}
