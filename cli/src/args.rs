//! Hand-written argument parsing: global flags may stand anywhere on the line (before or after
//! the command); each command then takes its own flags and positional arguments. `--` ends the
//! flags; `--flag=value` and `--flag value` are both accepted.

use std::collections::HashMap;
use std::time::Duration;

/// Flags shared by every command, after the environment has filled in what the line left out.
#[derive(Debug, Clone)]
pub struct Global {
    pub server: String,
    pub app_id: Option<String>,
    pub secret: Option<String>,
    pub token: Option<String>,
    pub user: String,
    pub nickname: Option<String>,
    pub tls: bool,
    pub tls_ca: Option<String>,
    pub json: bool,
    pub timeout: Option<Duration>,
    pub help: bool,
    pub version: bool,
}

pub const DEFAULT_SERVER: &str = "127.0.0.1:5210";

/// Global flags that take a value, with the environment variable that stands in for each.
const GLOBAL_VALUED: &[(&str, Option<&str>)] = &[
    ("--server", Some("CRVM_SERVER")),
    ("--app-id", Some("CRVM_APP_ID")),
    ("--secret", Some("CRVM_SECRET")),
    ("--token", Some("CRVM_TOKEN")),
    ("--user", Some("CRVM_USER")),
    ("--nickname", Some("CRVM_NICKNAME")),
    ("--tls-ca", Some("CRVM_TLS_CA")),
    ("--timeout", None),
];
const GLOBAL_SWITCHES: &[&str] = &["--tls", "--json", "--help", "-h", "--version", "-V"];

/// One command's own flags: (name, takes a value).
pub type FlagSpec = &'static [(&'static str, bool)];

/// The command line split into global flags and the rest, in order.
#[derive(Debug)]
pub struct Line {
    pub global: Global,
    /// Everything that is not a global flag; `--` is kept so the command parser honours it.
    pub rest: Vec<String>,
}

/// What a command's own parser found.
#[derive(Debug, Default)]
pub struct CmdArgs {
    pub positional: Vec<String>,
    flags: HashMap<&'static str, Option<String>>,
}

impl CmdArgs {
    pub fn has(&self, name: &str) -> bool {
        self.flags.contains_key(name)
    }

    pub fn value(&self, name: &str) -> Option<&str> {
        self.flags.get(name).and_then(|v| v.as_deref())
    }

    /// A flag's value as whole seconds (fractions allowed), if given.
    pub fn secs(&self, name: &str) -> Result<Option<Duration>, String> {
        self.value(name).map(|v| parse_secs(name, v)).transpose()
    }
}

pub fn parse_secs(name: &str, v: &str) -> Result<Duration, String> {
    match v.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= 1e9 => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!(
            "{name} wants a positive number of seconds, not {v:?}"
        )),
    }
}

/// Splits `--name=value` into its parts.
fn split_eq(arg: &str) -> (&str, Option<&str>) {
    if arg.starts_with("--") {
        if let Some((n, v)) = arg.split_once('=') {
            return (n, Some(v));
        }
    }
    (arg, None)
}

/// Pulls the global flags out of `args` (without the program name); `env` looks up
/// environment variables (a parameter so tests can pass their own).
pub fn split(args: &[String], env: &dyn Fn(&str) -> Option<String>) -> Result<Line, String> {
    let mut given: HashMap<&'static str, String> = HashMap::new();
    let mut switches: Vec<&'static str> = Vec::new();
    let mut rest = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            rest.extend(args[i - 1..].iter().cloned());
            break;
        }
        let (name, inline) = split_eq(arg);
        if let Some((flag, _)) = GLOBAL_VALUED.iter().find(|(f, _)| *f == name) {
            let value = match inline {
                Some(v) => v.to_owned(),
                None => {
                    let v = args.get(i).ok_or(format!("{flag} needs a value"))?;
                    i += 1;
                    v.clone()
                }
            };
            given.insert(flag, value);
        } else if let Some(sw) = GLOBAL_SWITCHES.iter().find(|s| **s == name) {
            if inline.is_some() {
                return Err(format!("{sw} takes no value"));
            }
            switches.push(sw);
        } else {
            rest.push(arg.clone());
        }
    }
    let get = |flag: &'static str| -> Option<String> {
        let env_name = GLOBAL_VALUED.iter().find(|(f, _)| *f == flag)?.1;
        given
            .get(flag)
            .cloned()
            .or_else(|| env_name.and_then(env).filter(|v| !v.is_empty()))
    };
    let timeout = get("--timeout")
        .map(|v| parse_secs("--timeout", &v))
        .transpose()?;
    let tls_ca = get("--tls-ca");
    let global = Global {
        server: get("--server").unwrap_or_else(|| DEFAULT_SERVER.to_owned()),
        app_id: get("--app-id"),
        secret: get("--secret"),
        token: get("--token"),
        user: get("--user").unwrap_or_default(),
        nickname: get("--nickname"),
        tls: switches.contains(&"--tls") || tls_ca.is_some(),
        tls_ca,
        json: switches.contains(&"--json"),
        timeout,
        help: switches.contains(&"--help") || switches.contains(&"-h"),
        version: switches.contains(&"--version") || switches.contains(&"-V"),
    };
    Ok(Line { global, rest })
}

/// Parses a command's arguments (`args` excludes the command name) against its flags.
pub fn command(cmd: &str, args: &[String], spec: FlagSpec) -> Result<CmdArgs, String> {
    let mut out = CmdArgs::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            out.positional.extend(args[i..].iter().cloned());
            break;
        }
        if arg.starts_with('-') && arg.len() > 1 {
            let (name, inline) = split_eq(arg);
            let Some(&(flag, valued)) = spec.iter().find(|(f, _)| *f == name) else {
                return Err(format!("unknown flag {name} for `crvm {cmd}`"));
            };
            let value = match (valued, inline) {
                (true, Some(v)) => Some(v.to_owned()),
                (true, None) => {
                    let v = args.get(i).ok_or(format!("{flag} needs a value"))?;
                    i += 1;
                    Some(v.clone())
                }
                (false, Some(_)) => return Err(format!("{flag} takes no value")),
                (false, None) => None,
            };
            out.flags.insert(flag, value);
        } else {
            out.positional.push(arg.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn globals_anywhere_and_env_fallback() {
        let env = |k: &str| match k {
            "CRVM_APP_ID" => Some("demo".to_owned()),
            "CRVM_USER" => Some("env-user".to_owned()),
            "CRVM_SERVER" => Some(String::new()),
            _ => None,
        };
        let l = split(
            &s(&["call", "--json", "bob", "--user=alice", "--timeout", "1.5"]),
            &env,
        )
        .unwrap();
        assert_eq!(l.rest, s(&["call", "bob"]));
        assert!(l.global.json);
        assert_eq!(l.global.user, "alice");
        assert_eq!(l.global.app_id.as_deref(), Some("demo"));
        assert_eq!(l.global.server, DEFAULT_SERVER, "empty env var = unset");
        assert_eq!(l.global.timeout, Some(Duration::from_millis(1500)));
        assert!(!l.global.tls);
        let l = split(&s(&["--tls-ca", "ca.pem", "login"]), &env).unwrap();
        assert!(l.global.tls, "a CA implies TLS");
        assert!(split(&s(&["login", "--timeout", "0"]), &env).is_err());
        assert!(split(&s(&["login", "--server"]), &env).is_err());
        assert!(split(&s(&["login", "--json=1"]), &env).is_err());
    }

    #[test]
    fn double_dash_ends_flags() {
        let env = |_: &str| None;
        let l = split(&s(&["send-cmd", "bob", "--", "--json"]), &env).unwrap();
        assert!(!l.global.json);
        let a = command("send-cmd", &l.rest[1..], &[]).unwrap();
        assert_eq!(a.positional, s(&["bob", "--json"]));
    }

    #[test]
    fn command_flags() {
        let spec: FlagSpec = &[("--count", true), ("--watch", false)];
        let a = command("x", &s(&["--count=3", "p", "--watch"]), spec).unwrap();
        assert_eq!(a.value("--count"), Some("3"));
        assert!(a.has("--watch"));
        assert_eq!(a.positional, s(&["p"]));
        assert!(command("x", &s(&["--nope"]), spec).is_err());
        assert!(command("x", &s(&["--count"]), spec).is_err());
        assert!(command("x", &s(&["--watch=1"]), spec).is_err());
        assert_eq!(
            command("x", &s(&["-"]), spec).unwrap().positional,
            s(&["-"])
        );
    }
}
