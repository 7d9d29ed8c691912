//! The command line, on `clap` (derive): the server's flags, and the `token`, `admin`,
//! `completions` and `man` commands. [`parse`] turns it into a [`Command`] of plain values.

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::admin::{Action, AdminOpts};

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Serve(ServeOpts),
    Token(TokenOpts),
    Admin(AdminOpts),
    Cert(CertOpts),
}

/// Options of `crvm-server cert`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertOpts {
    /// DNS names and IP addresses the certificate names.
    pub names: Vec<String>,
    /// Directory of `cert.pem` and `key.pem`.
    pub out: PathBuf,
    pub days: u32,
}

/// Options of the server proper.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServeOpts {
    pub dev: bool,
    pub config: Option<PathBuf>,
    pub listen: Option<String>,
    /// `--ws-listen HOST:PORT`: the WebSocket listener (`ws_listen`), overriding the config.
    pub ws_listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    /// `--log-format text|json` (else `CRVM_LOG_FORMAT`, else text).
    pub log_format: Option<String>,
    /// `--log-level FILTER` (else `CRVM_LOG`, else info).
    pub log_level: Option<String>,
}

/// Options of `crvm-server token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenOpts {
    pub app: String,
    pub user: String,
    pub ttl: i64,
    pub key: KeySource,
}

/// Where `token` takes the tenant secret from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Config(PathBuf),
    Dev,
    Secret(String),
}

/// Where `admin` finds the server when `--url` is not given.
pub const ADMIN_URL: &str = "http://127.0.0.1:8222";

const AFTER_HELP: &str = "\
The first line on stdout is `crvm-server listening on HOST:PORT` (then `crvm-server monitor on
HOST:PORT` with `monitor_listen`, `crvm-server websocket on HOST:PORT` with `ws_listen`), once
the server serves (a cluster node: once it joined); logs go to stderr. SIGINT or SIGTERM closes
every connection
(code 206) and exits with status 0; SIGHUP reloads the [[tenant]] tables of the config file.

Usage summary:
  crvm-server --dev [--listen HOST:PORT] [--ws-listen HOST:PORT] [--data-dir DIR] [--log-format text|json] [--log-level FILTER]
  crvm-server --config FILE [--listen HOST:PORT] [--ws-listen HOST:PORT] [--data-dir DIR] [--log-format …] [--log-level …]
  crvm-server token --app APP_ID --user USER_ID --ttl SECS (--config FILE | --dev | --secret SECRET)
  crvm-server admin [--url URL] [--token TOKEN] (stats | sessions APP_ID | calls APP_ID | kick APP_ID USER_ID | drain)
  crvm-server cert [--name HOST]… [--out DIR] [--days N]
  crvm-server completions bash|zsh|fish|elvish|powershell
  crvm-server man

Exit codes: 0 success, 1 the server could not start (bind, storage, runtime) or the admin API
refused, 2 bad usage or bad configuration. docs/SERVER.md has the configuration file.";

#[derive(Debug, Parser)]
#[command(
    name = "crvm-server",
    version,
    about = "The crvm call-signalling server",
    after_help = AFTER_HELP,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,
    #[command(flatten)]
    serve: Serve,
}

#[derive(Debug, Args)]
struct Serve {
    /// One tenant, app_id "demo" with secret "demo-secret"; listens on 127.0.0.1:5210, keeps
    /// data in ./crvm-data. For development only.
    #[arg(long, conflicts_with = "config")]
    dev: bool,
    /// The TOML configuration (docs/SERVER.md)
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free port); overrides the config
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,
    /// Also accept WebSocket clients on this address (port 0 picks a free port); overrides
    /// the config's ws_listen
    #[arg(long, value_name = "HOST:PORT")]
    ws_listen: Option<String>,
    /// Directory of the meeting database; overrides the config
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// text (default) or json: one event per line on stderr
    #[arg(long, value_name = "FORMAT", env = crate::log::FORMAT_ENV)]
    log_format: Option<String>,
    /// info (default), warn, debug…, or a tracing filter such as warn,crvm_server::link=debug
    #[arg(long, value_name = "FILTER", env = crate::log::LEVEL_ENV)]
    log_level: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// Print a login token for one user, signed with the tenant's secret
    Token(Token),
    /// Ask a running server's admin API (its monitor_listen address) and print its JSON answer
    Admin(Admin),
    /// Write a self-signed certificate and key for development (cert.pem, key.pem)
    Cert(Cert),
    /// Print a shell completion script
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff)
    Man,
}

#[derive(Debug, Args)]
struct Cert {
    /// A DNS name or IP address clients dial (repeatable; default localhost, 127.0.0.1, ::1)
    #[arg(long, value_name = "HOST")]
    name: Vec<String>,
    /// Directory to write cert.pem and key.pem in (existing files are not overwritten)
    #[arg(long, value_name = "DIR", default_value = ".")]
    out: PathBuf,
    /// Days the certificate is valid
    #[arg(long, value_name = "N", default_value_t = 365,
          value_parser = clap::value_parser!(u32).range(1..=3650))]
    days: u32,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("key").required(true).multiple(false)
    .args(["config", "dev", "secret"]))]
struct Token {
    #[arg(long, value_name = "APP_ID")]
    app: String,
    #[arg(long, value_name = "USER_ID")]
    user: String,
    /// Seconds the token is valid (zero or negative: already expired, for tests)
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    ttl: i64,
    /// Take the tenant's secret from this config file
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The dev tenant's secret
    #[arg(long)]
    dev: bool,
    /// This secret
    #[arg(long, value_name = "SECRET")]
    secret: Option<String>,
}

#[derive(Debug, Args)]
struct Admin {
    /// The monitor's base URL
    #[arg(long, global = true, default_value = ADMIN_URL)]
    url: String,
    /// The admin token
    #[arg(long, global = true, env = "CRVM_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    action: AdminSub,
}

#[derive(Debug, Subcommand)]
enum AdminSub {
    /// Server stats
    Stats,
    /// A tenant's logged-in users, a page at a time
    Sessions {
        app_id: String,
        /// Users after this one (the previous page's `next`)
        #[arg(long, value_name = "USER_ID")]
        after: Option<String>,
        /// Users per page (1–1000, default 100)
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
    },
    /// A tenant's calls in progress
    Calls { app_id: String },
    /// Close a user's session (line_off 206), wherever it is
    Kick { app_id: String, user_id: String },
    /// Drain the node: hand its sessions to the other cluster nodes, then stop
    Drain,
}

/// What [`parse`] did not turn into a command.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    /// Print this on stdout and exit 0 (help, version, completions, manual page).
    Print(String),
    /// A usage error found by clap: its message, hint included, on stderr; exit 2.
    Clap(String),
    /// A usage error of ours: exit 2.
    Usage(String),
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Command, Stop> {
    let argv = std::iter::once("crvm-server".to_owned()).chain(args.iter().cloned());
    let cli = match Cli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) if e.use_stderr() => return Err(Stop::Clap(e.render().to_string())),
        Err(e) => return Err(Stop::Print(e.render().to_string())),
    };
    match cli.command {
        None => serve(cli.serve),
        Some(Sub::Token(t)) => token(t),
        Some(Sub::Admin(a)) => admin(a),
        Some(Sub::Cert(c)) => Ok(Command::Cert(CertOpts {
            names: if c.name.is_empty() {
                ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec()
            } else {
                c.name
            },
            out: c.out,
            days: c.days,
        })),
        Some(Sub::Completions { shell }) => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "crvm-server", &mut out);
            Err(Stop::Print(String::from_utf8_lossy(&out).into_owned()))
        }
        Some(Sub::Man) => {
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut out)
                .expect("writing to a vector cannot fail");
            Err(Stop::Print(String::from_utf8_lossy(&out).into_owned()))
        }
    }
}

fn serve(s: Serve) -> Result<Command, Stop> {
    if !s.dev && s.config.is_none() {
        return Err(Stop::Usage(
            "either --dev or --config FILE is required".into(),
        ));
    }
    Ok(Command::Serve(ServeOpts {
        dev: s.dev,
        config: s.config,
        listen: s.listen,
        ws_listen: s.ws_listen,
        data_dir: s.data_dir,
        // An empty environment variable counts as unset.
        log_format: s.log_format.filter(|v| !v.is_empty()),
        log_level: s.log_level.filter(|v| !v.is_empty()),
    }))
}

fn token(t: Token) -> Result<Command, Stop> {
    if t.app.is_empty() || t.user.is_empty() {
        return Err(Stop::Usage(
            "token: `--app` and `--user` must not be empty".into(),
        ));
    }
    let key = match (t.config, t.dev, t.secret) {
        (Some(path), _, _) => KeySource::Config(path),
        (_, true, _) => KeySource::Dev,
        (_, _, Some(s)) => KeySource::Secret(s),
        _ => unreachable!("clap requires one of the group"),
    };
    Ok(Command::Token(TokenOpts {
        app: t.app,
        user: t.user,
        ttl: t.ttl,
        key,
    }))
}

fn admin(a: Admin) -> Result<Command, Stop> {
    let Some(token) = a.token.filter(|t| !t.is_empty()) else {
        return Err(Stop::Usage(
            "admin: give the admin token with --token or CRVM_ADMIN_TOKEN".into(),
        ));
    };
    let action = match a.action {
        AdminSub::Stats => Action::Stats,
        AdminSub::Sessions {
            app_id,
            after,
            limit,
        } => Action::Sessions {
            tenant: app_id,
            after,
            limit,
        },
        AdminSub::Calls { app_id } => Action::Calls { tenant: app_id },
        AdminSub::Kick { app_id, user_id } => Action::Kick {
            tenant: app_id,
            user: user_id,
        },
        AdminSub::Drain => Action::Drain,
    };
    Ok(Command::Admin(AdminOpts {
        url: a.url,
        token,
        action,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn usage(s: &str) -> String {
        match parse(&args(s)) {
            Err(Stop::Usage(m) | Stop::Clap(m)) => m,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn serve_flags() {
        assert_eq!(
            parse(&args(
                "--dev --listen 127.0.0.1:0 --ws-listen 127.0.0.1:0 --data-dir=/tmp/d --log-format json --log-level warn"
            ))
            .unwrap(),
            Command::Serve(ServeOpts {
                dev: true,
                config: None,
                listen: Some("127.0.0.1:0".into()),
                ws_listen: Some("127.0.0.1:0".into()),
                data_dir: Some("/tmp/d".into()),
                log_format: Some("json".into()),
                log_level: Some("warn".into()),
            })
        );
        assert!(matches!(
            parse(&args("--config c.toml")).unwrap(),
            Command::Serve(ServeOpts {
                config: Some(_),
                dev: false,
                ..
            })
        ));
        assert!(
            matches!(parse(&args("--dev --help")), Err(Stop::Print(h)) if h.contains("Usage:"))
        );
    }

    #[test]
    fn serve_errors() {
        assert!(usage("").contains("--dev or --config"));
        assert!(usage("--dev --bogus").contains("--bogus"));
        assert!(usage("--dev --listen").contains("--listen"));
        usage("--dev=1");
        usage("--dev --config x");
    }

    #[test]
    fn token_flags() {
        assert_eq!(
            parse(&args("token --app a --user u --ttl 60 --secret s")).unwrap(),
            Command::Token(TokenOpts {
                app: "a".into(),
                user: "u".into(),
                ttl: 60,
                key: KeySource::Secret("s".into()),
            })
        );
        usage("token --app a --user u --ttl 60");
        assert!(parse(&args("token --app a --user u --ttl -60 --dev")).is_ok());
        usage("token --app a --user u --ttl x --dev");
        usage("token --app a --ttl 5 --dev");
        usage("token --app a --user u --ttl 5 --dev --secret s");
        assert!(usage("token --app a --user u --ttl 5 --dev --zap").contains("--zap"));
    }

    #[test]
    fn admin_commands() {
        assert_eq!(
            parse(&args("admin --token t sessions demo --limit 2 --after bob")).unwrap(),
            Command::Admin(AdminOpts {
                url: ADMIN_URL.into(),
                token: "t".into(),
                action: Action::Sessions {
                    tenant: "demo".into(),
                    after: Some("bob".into()),
                    limit: Some(2),
                },
            })
        );
        assert!(matches!(
            parse(&args("admin kick demo bob --url http://h:1 --token t")).unwrap(),
            Command::Admin(AdminOpts { ref url, action: Action::Kick { .. }, .. }) if url == "http://h:1"
        ));
        usage("admin --token t stats extra");
        usage("admin --token t kick demo");
        assert!(matches!(
            parse(&args("admin drain --token t")).unwrap(),
            Command::Admin(AdminOpts {
                action: Action::Drain,
                ..
            })
        ));
        usage("admin --token t calls --limit 3 demo");
    }

    #[test]
    fn completions_and_the_manual() {
        for shell in ["bash", "zsh", "fish"] {
            match parse(&args(&format!("completions {shell}"))) {
                Err(Stop::Print(s)) => assert!(s.contains("crvm-server"), "{shell}"),
                other => panic!("{other:?}"),
            }
        }
        match parse(&args("man")) {
            Err(Stop::Print(s)) => assert!(s.contains(".TH crvm-server"), "{s}"),
            other => panic!("{other:?}"),
        }
        usage("completions tcsh");
    }
}
