// What is generated from the events table (`src/events.rs`) and from the header: the C
// declaration of `crvm_callbacks` (into include/crvm.h); in include/crvm.hpp, the C++
// wrapper's `crvm::Event`, `crvm::Handlers` with the trampolines, the `on_<event>` setters and
// the methods of the plain requests, and in include/crvm_values.hpp its `crvm::Errc` (marked
// regions); for Python, the description of the ABI (bindings/python/crvm/_abi.py) and
// the methods of the plain requests (a marked region of client.py). All are committed;
// `build.rs` rewrites them on every build and `tests/mirrors.rs` fails when a committed copy
// differs from what this file renders, so no mirror is kept by hand.
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

/// `head` and `tail` on one line, a space apart, or on two (`tail` indented by `indent`) if
/// one would be too long.
fn fit(head: &str, tail: &str, indent: &str) -> String {
    fit_sep(head, " ", tail, indent)
}

/// `prefix`, `items` separated by ", ", then `suffix`, on one line if it fits; otherwise
/// `prefix` alone, then the items packed on lines indented by `indent`, `suffix` after the last.
fn wrap_list(prefix: &str, items: &[String], suffix: &str, indent: &str) -> String {
    let one = format!("{prefix}{}{suffix}", items.join(", "));
    if one.len() <= WIDTH {
        return one + "\n";
    }
    let mut out = format!("{prefix}\n");
    let mut line = indent.to_owned();
    for (i, item) in items.iter().enumerate() {
        let piece = if i + 1 < items.len() {
            format!("{item},")
        } else {
            format!("{item}{suffix}")
        };
        if line.len() > indent.len() && line.len() + 1 + piece.len() > WIDTH {
            out += &format!("{line}\n");
            line = indent.to_owned();
        }
        if line.len() > indent.len() {
            line.push(' ');
        }
        line += &piece;
    }
    out + &line + "\n"
}

/// [`fit`] with `sep` between the two on one line.
fn fit_sep(head: &str, sep: &str, tail: &str, indent: &str) -> String {
    if head.len() + sep.len() + tail.len() <= WIDTH {
        format!("{head}{sep}{tail}\n")
    } else {
        format!("{head}\n{indent}{tail}\n")
    }
}

/// How C++ sees one argument of a callback: the field of `crvm::Event` it becomes (also the
/// handler's parameter name), its C++ type, and the expression that converts the C argument
/// (named as in the header) inside a trampoline. Codes become `crvm::Errc`, base64 becomes
/// `crvm::Bytes`, and the JSON of statuses and meetings is parsed into `crvm::UserStatus` and
/// `crvm::Meeting`.
fn cpp_field(name: &str, kind: Kind) -> (String, &'static str, String) {
    let (field, ty, conv) = match (kind, name) {
        (Kind::Json, "users_status") => ("statuses", "std::vector<UserStatus>", "parse_statuses"),
        (Kind::Json, "user_status") => ("status", "UserStatus", "parse_status"),
        (Kind::Json, "json_meetings") => ("meetings", "std::vector<Meeting>", "parse_meetings"),
        (Kind::Json, "meet_obj") => ("meeting", "Meeting", "parse_meeting"),
        (Kind::Json, _) => panic!("JSON argument {name}: give it a C++ type in cpp_field"),
        (Kind::B64, _) => (
            name.strip_suffix("_base64").unwrap_or(name),
            "Bytes",
            "from_base64",
        ),
        (Kind::Id | Kind::Str, _) => (name, "std::string", "str"),
        (Kind::Code | Kind::Rslt, _) => (name, "Errc", "Errc"),
        (Kind::I32, _) => (name, "int32_t", ""),
        (Kind::I64, _) => (name, "int64_t", ""),
    };
    (field.to_owned(), ty, format!("{conv}({name})"))
}

/// The C++ parameter type of a handler for a field of type `ty`: class types by reference.
fn cpp_param(ty: &str) -> String {
    match ty {
        "Errc" | "int32_t" | "int64_t" => ty.to_owned(),
        _ => format!("const {ty} &"),
    }
}

/// The parameters of an event's handler: `Client &`, then the converted arguments.
fn cpp_handler_params(cb: &Callback) -> Vec<String> {
    let mut params = vec!["Client &".to_owned()];
    for &(name, kind) in cb.args {
        let (field, ty, _) = cpp_field(name, kind);
        let p = cpp_param(ty);
        let sep = if p.ends_with('&') { "" } else { " " };
        params.push(format!("{p}{sep}{field}"));
    }
    params
}

/// The generated region of include/crvm.hpp, markers included: `crvm::Event` (what
/// `next_event` returns: the union of every event's fields), `crvm::Handlers` (one handler
/// type and slot per event) and `detail::set_trampolines`, which points each C member at a
/// function that converts its arguments into an `Event` and hands it to `detail::deliver`.
/// The C++ compiler checks every trampoline's signature against the header's member.
pub fn cpp_region() -> String {
    let mut out = format!(
        "{CPP_BEGIN}: do not edit; `cargo build` rewrites it.\n\
         // One event, as Client::next_event returns it: `name` is the crvm_callbacks member\n\
         // (documented in docs/API.md); the other fields are those of every event, and an\n\
         // event sets only its own (the rest stay empty or zero).\n\
         struct Event {{\n\
         \x20 std::string name;\n"
    );
    let mut fields: Vec<(String, &str)> = Vec::new();
    for cb in TABLE.callbacks {
        for &(name, kind) in cb.args {
            let (field, ty, _) = cpp_field(name, kind);
            match fields.iter().find(|(f, _)| *f == field) {
                Some((_, t)) => assert_eq!(*t, ty, "Event::{field} has two types"),
                None => fields.push((field, ty)),
            }
        }
    }
    for (field, ty) in &fields {
        let init = match *ty {
            "Errc" => " = Errc::NOERR",
            "int32_t" | "int64_t" => " = 0",
            _ => "",
        };
        out += &format!("  {ty} {field}{init};\n");
    }
    out += "};\n\n\
            // The handler of each event (Client::on_<event> sets it): the client, then the event's\n\
            // arguments, converted. Held by shared_ptr, so a running handler outlives its replacement.\n\
            struct Handlers {\n";
    for cb in TABLE.callbacks {
        out += &wrap_list(
            &format!("  using {}_fn = std::function<void(", cb.name),
            &cpp_handler_params(cb),
            ")>;",
            "      ",
        );
        out += &format!("  std::shared_ptr<const {0}_fn> {0};\n", cb.name);
    }
    out += "};\n\nnamespace detail {\n\n\
            // Points every member of `cb` at a function that makes the event and delivers it.\n\
            inline void set_trampolines(crvm_callbacks &cb) {\n";
    for cb in TABLE.callbacks {
        let mut sig = vec!["void *ud".to_owned()];
        sig.extend(cb.args.iter().map(|(n, k)| format!("{}{n}", k.c())));
        out += &wrap_list(&format!("  cb.{} = [](", cb.name), &sig, ") {", "      ");
        out += &format!("    Event e;\n    e.name = \"{}\";\n", cb.name);
        let mut fields = Vec::new();
        for &(name, kind) in cb.args {
            let (field, _, conv) = cpp_field(name, kind);
            out += &format!("    e.{field} = {conv};\n");
            fields.push(format!("ev.{field}"));
        }
        let mut call = vec!["c".to_owned()];
        call.extend(fields);
        out += "    auto call = [](const auto &f, Client &c, const Event &ev) {\n";
        out += &wrap_list("      f(", &call, ");", "          ");
        out += "    };\n";
        out += &format!(
            "    deliver(ud, std::move(e), &Handlers::{}, call);\n",
            cb.name
        );
        out += "  };\n";
    }
    out + &format!("}}\n\n}}  // namespace detail\n{CPP_END}")
}

/// The first and last lines of the generated setters inside `crvm::Client`.
pub const CPP_SETTERS_BEGIN: &str = "// BEGIN generated handler setters from src/events.rs";
pub const CPP_SETTERS_END: &str = "// END generated handler setters";

/// `on_<event>(handler)` for every event: sets or replaces (or, with an empty function,
/// removes) its handler, at any time, from any thread.
pub fn cpp_setters() -> String {
    let mut out = format!(
        "{CPP_SETTERS_BEGIN}: do not edit; `cargo build` rewrites it.\n\
         \x20 // on_<event>(handler): sets, replaces or (with {{}}) removes the handler of an event, at any\n\
         \x20 // time and from any thread; an event without a handler goes to next_event's queue.\n"
    );
    for cb in TABLE.callbacks {
        out += &fit(
            &format!("  void on_{0}(Handlers::{0}_fn f) {{", cb.name),
            &format!("set(&Handlers::{}, std::move(f)); }}", cb.name),
            "    ",
        );
    }
    out + "  " + CPP_SETTERS_END
}

/// The first and last lines of the generated error codes of include/crvm.hpp.
pub const CPP_ERRC_BEGIN: &str = "// BEGIN generated error codes from include/crvm.h";
pub const CPP_ERRC_END: &str = "// END generated error codes";

/// The header's error codes: (name without `CRVIDEOSDK_`, value, the comment's text).
pub fn header_codes(header: &str) -> Vec<(String, i32, String)> {
    let mut out = Vec::new();
    let mut doc = String::new();
    for line in header.lines() {
        let t = line.trim();
        if let Some(text) = t.strip_prefix("* ") {
            doc = text.to_owned();
        } else if let Some(rest) = t.strip_prefix("#define CRVIDEOSDK_") {
            let (name, value) = rest.split_once(' ').expect("#define NAME VALUE");
            let value = value.trim().parse().expect("a number");
            out.push((name.to_owned(), value, std::mem::take(&mut doc)));
        }
    }
    out
}

/// `crvm::Errc` (the header's codes, named without their prefix) and `crvm::name(Errc)`.
pub fn cpp_errc(header: &str) -> String {
    let codes = header_codes(header);
    let mut out = format!(
        "{CPP_ERRC_BEGIN}: do not edit; `cargo build` rewrites it.\n\
         // The error codes of crvm.h (CRVIDEOSDK_<NAME>) as Errc::<NAME>; docs/API.md explains each.\n\
         enum class Errc : int32_t {{\n"
    );
    for (name, value, doc) in &codes {
        out += &format!("  {name} = {value},  // {doc}\n");
    }
    out += "};\n\n\
            // The C name of a code (\"CRVIDEOSDK_ERR_OFFLINE\"); \"\" for a value that is none of them.\n\
            inline const char *name(Errc code) noexcept {\n\
            \x20 switch (code) {\n";
    for (name, _, _) in &codes {
        out += &fit(
            &format!("    case Errc::{name}:"),
            &format!("return \"CRVIDEOSDK_{name}\";"),
            "      ",
        );
    }
    out + "  }\n  return \"\";\n}\n" + CPP_ERRC_END
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
        "# The {} members of crvm_callbacks, in the header's order (docs/API.md §2.3), each with its\n\
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

// ---------------------------------------------------------------------------------------------
// Requests: the bindings' methods of the plain ones

/// Functions of a client whose C++ method is written by hand in include/crvm.hpp (lifecycle,
/// defaults beyond a trailing cookie, and data taken as bytes). Every other request of the header is plain and
/// generated.
pub const CPP_BY_HAND: &[&str] = &[
    "crvm_set_option",
    "crvm_poll",
    "crvm_destroy",
    "crvm_login",
    "crvm_logout",
    "crvm_network_changed",
    "crvm_call",
    "crvm_accept_call",
    "crvm_reject_call",
    "crvm_hungup_call",
    "crvm_send_cmd",
    "crvm_send_buffer",
];

/// The same for Python's bindings/python/crvm/client.py, which also writes by hand the methods
/// that take bytes or paths, other defaults, or say more in a docstring.
pub const PY_BY_HAND: &[&str] = &[
    "crvm_set_option",
    "crvm_poll",
    "crvm_destroy",
    "crvm_login",
    "crvm_logout",
    "crvm_network_changed",
    "crvm_create_meeting",
    "crvm_call",
    "crvm_accept_call",
    "crvm_reject_call",
    "crvm_hungup_call",
    "crvm_send_cmd",
    "crvm_send_buffer",
    "crvm_send_file",
];

/// A plain request: `int32_t crvm_<name>(struct crvm_client *c, ...)` whose arguments are
/// strings and `int32_t`s, then maybe an `<x>_out`/`<x>_cap` buffer for an ID it returns.
pub struct Request {
    /// The C function's name.
    pub c_name: String,
    /// The method's: without `crvm_`.
    pub name: String,
    /// (name, is a string) of each argument between the handle and the ID buffer.
    pub args: Vec<(String, bool)>,
    /// It writes an ID to a buffer, which the method returns.
    pub returns_id: bool,
}

/// The plain requests of `header` that `by_hand` leaves to the generator, in the header's
/// order. Panics on a request that is neither plain nor written by hand: its methods must be.
pub fn plain_requests(header: &str, by_hand: &[&str]) -> Vec<Request> {
    let mut out = Vec::new();
    for (c_name, ret, args) in header_functions(header) {
        let is_request = args
            .first()
            .is_some_and(|(_, ty)| ty == "struct crvm_client *");
        if !is_request || by_hand.contains(&c_name.as_str()) {
            continue;
        }
        let mut args = &args[1..];
        let mut returns_id = false;
        if let [rest @ .., (out, out_ty), (cap, cap_ty)] = args {
            if out.ends_with("_out") && out_ty == "char *" && cap.ends_with("_cap") {
                assert_eq!(cap_ty, "size_t", "{c_name}: {cap}");
                (args, returns_id) = (rest, true);
            }
        }
        let plain = ret == "int32_t"
            && args
                .iter()
                .all(|(_, ty)| ty == "const char *" || ty == "int32_t");
        assert!(
            plain,
            "{c_name} is not a plain request: write its C++ and Python methods by hand and add \
             it to CPP_BY_HAND and PY_BY_HAND (codegen/mirrors.rs)"
        );
        out.push(Request {
            name: c_name["crvm_".len()..].to_owned(),
            args: args
                .iter()
                .map(|(n, ty)| (n.clone(), ty == "const char *"))
                .collect(),
            c_name,
            returns_id,
        });
    }
    out
}

pub const CPP_REQUESTS_BEGIN: &str = "// BEGIN generated from include/crvm.h by build.rs";
pub const CPP_REQUESTS_END: &str = "// END generated from include/crvm.h";

/// The generated region inside `crvm::Client`: one method per plain request.
pub fn cpp_requests(header: &str) -> String {
    let mut out = format!(
        "{CPP_REQUESTS_BEGIN}: do not edit; `cargo build` rewrites it.\n\
         \x20 // The plain requests, crvm_<name> without the handle: a trailing cookie defaults to \"\",\n\
         \x20 // an ID buffer becomes the return value. A refusal throws crvm::Error.\n"
    );
    for r in plain_requests(header, CPP_BY_HAND) {
        let n = r.args.len();
        let params: Vec<String> = (r.args.iter().enumerate())
            .map(|(i, (a, s))| match (s, i + 1 == n && a == "cookie") {
                (true, true) => format!("Text {a} = \"\""),
                (true, false) => format!("Text {a}"),
                (false, _) => format!("int32_t {a}"),
            })
            .collect();
        let mut call: Vec<String> = vec!["c_".into()];
        call.extend(r.args.iter().map(|(a, s)| match s {
            true => format!("{a}.c(\"{}\", \"{a}\")", r.name),
            false => a.clone(),
        }));
        let ret = if r.returns_id { "std::string" } else { "void" };
        out += &format!("  {ret} {}({}) {{\n", r.name, params.join(", "));
        if r.returns_id {
            call.extend(["id".into(), "sizeof id".into()]);
            out += "    char id[CRVM_ID_BUF_LEN];\n";
        }
        out += &wrap_list(
            &format!("    detail::check({}(", r.c_name),
            &call,
            &format!("), \"{}\");", r.name),
            "        ",
        );
        if r.returns_id {
            out += "    return id;\n";
        }
        out += "  }\n";
    }
    out + "  " + CPP_REQUESTS_END
}

pub const PY_REQUESTS_BEGIN: &str = "# BEGIN generated from include/crvm.h by build.rs";
pub const PY_REQUESTS_END: &str = "# END generated from include/crvm.h";

/// The generated region at the end of Python's `Client`: one method per plain request.
pub fn py_requests(header: &str) -> String {
    let mut out = format!(
        "{PY_REQUESTS_BEGIN}: do not edit; `cargo build` rewrites it.\n\
         \x20   # The plain requests, crvm_<name> without the handle: a trailing cookie defaults to \"\",\n\
         \x20   # an ID buffer becomes the returned str.\n"
    );
    for r in plain_requests(header, PY_BY_HAND) {
        let n = r.args.len();
        let mut params = vec!["self".to_owned()];
        params.extend(r.args.iter().enumerate().map(|(i, (a, s))| {
            match (s, i + 1 == n && a == "cookie") {
                (true, true) => format!("{a}: str = \"\""),
                (true, false) => format!("{a}: str"),
                (false, _) => format!("{a}: int"),
            }
        }));
        let ret = if r.returns_id { "str" } else { "None" };
        out += &format!("\n    def {}({}) -> {ret}:\n", r.name, params.join(", "));
        let mut call = vec![format!("\"{}\"", r.c_name)];
        call.extend(r.args.iter().map(|(a, s)| match s {
            true => format!("_s({a}, \"{a}\")"),
            false => format!("_i32({a}, \"{a}\")"),
        }));
        let head = if r.returns_id {
            "        return self._with_id("
        } else {
            "        self._c("
        };
        out += &fit_sep(
            head,
            "",
            &format!("{})", call.join(", ")),
            "                ",
        );
    }
    out + "    " + PY_REQUESTS_END
}
