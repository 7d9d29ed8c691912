//! The command line, on `clap` (derive): global flags may stand anywhere on the line (before or
//! after the command), each with the environment variable that stands in for it (an empty one
//! counts as unset); each command then takes its own flags and positional arguments. `--` ends
//! the flags; `--flag=value` and `--flag value` are both accepted. `--help` prints the texts of
//! [`crate::help`] (what docs/CLI.md documents).

use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

pub const DEFAULT_SERVER: &str = "127.0.0.1:5210";

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
}

#[derive(Debug, Parser)]
#[command(name = "crvm", version, about = "Command-line client for crvm-server")]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Args)]
struct GlobalArgs {
    /// Server address
    #[arg(long, global = true, value_name = "HOST:PORT", env = "CRVM_SERVER")]
    server: Option<String>,
    /// Tenant app ID
    #[arg(long, global = true, value_name = "ID", env = "CRVM_APP_ID")]
    app_id: Option<String>,
    /// Tenant secret
    #[arg(long, global = true, env = "CRVM_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// A user token (crvm-server token ...)
    #[arg(long, global = true, env = "CRVM_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// User ID (empty: the server picks one)
    #[arg(long, global = true, env = "CRVM_USER")]
    user: Option<String>,
    /// Nickname (default: the user ID)
    #[arg(long, global = true, value_name = "NAME", env = "CRVM_NICKNAME")]
    nickname: Option<String>,
    /// Speak TLS to the server
    #[arg(long, global = true)]
    tls: bool,
    /// Trust these CA certificates (PEM); implies --tls
    #[arg(long, global = true, value_name = "FILE", env = "CRVM_TLS_CA")]
    tls_ca: Option<String>,
    /// One JSON object per line on stdout
    #[arg(long, global = true)]
    json: bool,
    /// Exit 4 unless the command has reached its goal by then
    #[arg(long, global = true, value_name = "SECS", value_parser = timeout_secs)]
    timeout: Option<Duration>,
}

/// What to do, with the command's own arguments.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Log in, print the user ID, log out
    Login,
    /// Every online user's status; --watch: then every change
    Status {
        #[arg(long)]
        watch: bool,
    },
    /// Set do-not-disturb: on, off or N (any integer, 0 = off)
    Dnd { value: String },
    /// Call USER; once accepted, stay until either side hangs up
    Call {
        #[arg(value_name = "USER")]
        peer: String,
        #[arg(long, value_name = "SECS", value_parser = hangup_secs)]
        hangup_after: Option<Duration>,
    },
    /// Wait for a call, accept (or reject) it, stay until hung up
    Answer {
        #[arg(long)]
        reject: bool,
        #[arg(long, value_name = "USER")]
        from: Option<String>,
        #[arg(long, value_name = "SECS", value_parser = hangup_secs)]
        hangup_after: Option<Duration>,
    },
    /// Send TEXT (UTF-8) as a cmd
    SendCmd {
        #[arg(value_name = "USER")]
        to: String,
        text: String,
    },
    /// Send a file; progress bar on stderr when it is a terminal
    SendFile {
        #[arg(value_name = "USER")]
        to: String,
        path: String,
        #[arg(long)]
        no_progress: bool,
    },
    /// Save incoming files into DIR (default .); print cmds, buffers
    Receive {
        #[arg(long, default_value = ".")]
        dir: String,
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        count: Option<u64>,
    },
    /// The tenant's meetings: list (default), create, destroy
    Meetings {
        #[command(subcommand)]
        action: Option<Meetings>,
    },
    /// Print a shell completion script
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff)
    Man,
}

#[derive(Debug, Subcommand)]
pub enum Meetings {
    List,
    Create {
        subject: String,
        #[arg(long)]
        password: bool,
    },
    Destroy {
        id: String,
    },
}

/// What [`parse`] did not turn into a command.
#[derive(Debug)]
pub enum Stop {
    /// Print this on stdout and exit 0 (help, version, completions, the manual page).
    Print(String),
    /// A usage error: this on stderr, exit 2.
    Usage(String),
    /// No command at all: the overview on stderr, exit 2.
    NoCommand,
}

fn positive_secs(name: &str, v: &str) -> Result<Duration, String> {
    match v.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= 1e9 => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!(
            "{name} wants a positive number of seconds, not {v:?}"
        )),
    }
}

fn timeout_secs(v: &str) -> Result<Duration, String> {
    positive_secs("--timeout", v)
}

fn hangup_secs(v: &str) -> Result<Duration, String> {
    positive_secs("--hangup-after", v)
}

/// The command tree with the help texts of [`crate::help`].
fn command() -> clap::Command {
    let mut c = Cli::command().override_help(crate::help::MAIN);
    let names: Vec<String> = c
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    for name in names {
        if let Some(text) = crate::help::command(&name) {
            c = c.mut_subcommand(name, |s| s.override_help(text));
        }
    }
    c
}

/// Parses the arguments after the program name; `env` looks up environment variables (through
/// clap, from the process's environment).
pub fn parse(args: &[String]) -> Result<(Global, Command), Stop> {
    let argv = std::iter::once("crvm".to_owned()).chain(args.iter().cloned());
    let matches = match command().try_get_matches_from(argv) {
        Ok(m) => m,
        Err(e) if e.use_stderr() => return Err(Stop::Usage(e.render().to_string())),
        Err(e) => return Err(Stop::Print(e.render().to_string())),
    };
    let cli = Cli::from_arg_matches(&matches).map_err(|e| Stop::Usage(e.to_string()))?;
    let g = cli.global;
    let set = |v: Option<String>| v.filter(|s| !s.is_empty());
    let tls_ca = set(g.tls_ca);
    let global = Global {
        server: set(g.server).unwrap_or_else(|| DEFAULT_SERVER.to_owned()),
        app_id: set(g.app_id),
        secret: set(g.secret),
        token: set(g.token),
        user: g.user.unwrap_or_default(),
        nickname: set(g.nickname),
        tls: g.tls || tls_ca.is_some(),
        tls_ca,
        json: g.json,
        timeout: g.timeout,
    };
    match cli.command {
        None => Err(Stop::NoCommand),
        Some(Command::Completions { shell }) => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "crvm", &mut out);
            Err(Stop::Print(String::from_utf8_lossy(&out).into_owned()))
        }
        Some(Command::Man) => {
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut out)
                .expect("writing to a vector cannot fail");
            Err(Stop::Print(String::from_utf8_lossy(&out).into_owned()))
        }
        Some(cmd) => Ok((global, cmd)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn usage(v: &[&str]) -> String {
        match parse(&s(v)) {
            Err(Stop::Usage(m)) => m,
            other => panic!("{v:?}: {other:?}"),
        }
    }

    #[test]
    fn globals_anywhere() {
        let (g, cmd) = parse(&s(&[
            "call",
            "--json",
            "bob",
            "--user=alice",
            "--timeout",
            "1.5",
        ]))
        .unwrap();
        assert!(matches!(cmd, Command::Call { ref peer, hangup_after: None } if peer == "bob"));
        assert!(g.json);
        assert_eq!(g.user, "alice");
        assert_eq!(g.timeout, Some(Duration::from_millis(1500)));
        assert!(!g.tls);
        let (g, _) = parse(&s(&["--tls-ca", "ca.pem", "login"])).unwrap();
        assert!(g.tls, "a CA implies TLS");
        usage(&["login", "--timeout", "0"]);
        usage(&["login", "--server"]);
        usage(&["login", "--json=1"]);
    }

    #[test]
    fn double_dash_ends_flags() {
        let (g, cmd) = parse(&s(&["send-cmd", "bob", "--", "--json"])).unwrap();
        assert!(!g.json);
        assert!(matches!(cmd, Command::SendCmd { ref text, .. } if text == "--json"));
    }

    #[test]
    fn command_flags() {
        let (_, cmd) = parse(&s(&["receive", "--count=3", "--dir", "d"])).unwrap();
        assert!(matches!(cmd, Command::Receive { count: Some(3), ref dir } if dir == "d"));
        assert!(usage(&["receive", "--nope"]).contains("--nope"));
        usage(&["receive", "--count"]);
        usage(&["receive", "--count", "0"]);
        usage(&["status", "--watch=1"]);
        usage(&["meetings", "list", "--password"]);
        usage(&["meetings", "rename"]);
        assert!(matches!(
            parse(&s(&["meetings"])).unwrap().1,
            Command::Meetings { action: None }
        ));
    }

    #[test]
    fn help_version_completions_and_the_manual() {
        let print = |v: &[&str]| match parse(&s(v)) {
            Err(Stop::Print(t)) => t,
            other => panic!("{v:?}: {other:?}"),
        };
        assert!(print(&["--help"]).contains("Exit codes"));
        assert!(print(&["call", "--help"]).starts_with("Usage: crvm call"));
        assert!(print(&["help", "send-file"]).starts_with("Usage: crvm send-file"));
        assert_eq!(
            print(&["--version"]),
            format!("crvm {}\n", env!("CARGO_PKG_VERSION"))
        );
        for shell in ["bash", "zsh", "fish"] {
            assert!(
                print(&["completions", shell]).contains("send-file"),
                "{shell}"
            );
        }
        assert!(print(&["man"]).contains(".TH crvm"));
        assert!(matches!(parse(&[]), Err(Stop::NoCommand)));
    }
}
