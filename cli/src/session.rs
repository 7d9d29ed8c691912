//! A logged-in client with its event queue, the output (human or JSON lines), the ways a command
//! can fail, and the exit code each failure means.

use crate::args::Global;
use crate::signals;
use crvm::core::{Client, Code, Event, LoginParams};
use crvm_proto::error::*;
use serde_json::{json, Value};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Exit codes (docs/CLI.md, `crvm --help`).
pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_LINK: i32 = 3;
pub const EXIT_TIMEOUT: i32 = 4;

/// Why a command did not succeed.
#[derive(Debug)]
pub enum Fail {
    /// Bad command line, or an argument that cannot be used (a --dir that cannot be created).
    Usage(String),
    /// The library or the server answered with a crvm error code (docs/API.md §6) (synchronously or in an event).
    Code { what: String, code: Code },
    /// The session ended under us: `line_off(code)`.
    Lost(Code),
    /// `--timeout` passed before the command reached its goal.
    Timeout(String),
    /// SIGINT or SIGTERM before the command reached its goal.
    Interrupted(i32),
    /// Standard output is gone (a closed pipe).
    Output,
}

/// Codes that mean the connection could not be made or kept.
fn is_link_code(code: Code) -> bool {
    matches!(
        code.get(),
        CRVIDEOSDK_NETWORK_INITFAILED
            | CRVIDEOSDK_NO_SERVERINFO
            | CRVIDEOSDK_CREATE_CONN_FAILED
            | CRVIDEOSDK_SOCKETEXCEPTION
            | CRVIDEOSDK_FORCEDCLOSECONNECTION
            | CRVIDEOSDK_CONNECTIONLOST
            | CRVIDEOSDK_SSL_ERR
    )
}

/// Codes that mean the server did not answer in time.
fn is_timeout_code(code: Code) -> bool {
    matches!(
        code.get(),
        CRVIDEOSDK_NOSERVER_RSP | CRVIDEOSDK_SOCKETTIMEOUT
    )
}

impl Fail {
    pub fn code(what: impl Into<String>, code: Code) -> Fail {
        Fail::Code {
            what: what.into(),
            code,
        }
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Fail::Usage(_) => EXIT_USAGE,
            Fail::Code { code, .. } if is_link_code(*code) => EXIT_LINK,
            Fail::Code { code, .. } if is_timeout_code(*code) => EXIT_TIMEOUT,
            Fail::Code { .. } => EXIT_FAILED,
            Fail::Lost(_) => EXIT_LINK,
            Fail::Timeout(_) => EXIT_TIMEOUT,
            Fail::Interrupted(sig) => 128 + sig,
            Fail::Output => 128 + libc::SIGPIPE,
        }
    }

    fn spec_code(&self) -> Option<Code> {
        match self {
            Fail::Code { code, .. } | Fail::Lost(code) => Some(*code),
            _ => None,
        }
    }

    fn message(&self) -> String {
        match self {
            Fail::Usage(m) => m.clone(),
            Fail::Code { what, code } => format!("{what}: {} {}", code.get(), code.text()),
            Fail::Lost(code) => format!("session ended: {} {}", code.get(), code.text()),
            Fail::Timeout(what) => format!("timed out {what}"),
            Fail::Interrupted(sig) => format!(
                "interrupted by {}",
                if *sig == libc::SIGTERM {
                    "SIGTERM"
                } else {
                    "SIGINT"
                }
            ),
            Fail::Output => "standard output closed".to_owned(),
        }
    }

    /// Prints the failure: a line on stderr always, and with `--json` an `error` object on
    /// stdout (not for usage errors, which point at `--help` instead).
    pub fn report(&self, out: &Out) {
        let msg = self.message();
        match self {
            Fail::Usage(_) => eprintln!("crvm: {msg}\n(see `crvm --help`)"),
            Fail::Output => {}
            _ => eprintln!("crvm: {msg}"),
        }
        if out.json && !matches!(self, Fail::Output | Fail::Usage(_)) {
            let code = self.spec_code();
            out.json_line(json!({
                "event": "error",
                "code": code.map(Code::get),
                "text": code.map(Code::text),
                "message": msg,
                "exit": self.exit_code(),
            }));
        }
    }
}

/// The end of a request as a step of [`Session::wait`]: its value, or [`Fail::Code`] with `what`.
pub fn done<T>(what: &str, result: Result<T, Code>) -> Result<Option<T>, Fail> {
    result.map(Some).map_err(|c| Fail::code(what, c))
}

/// Where results go: human lines or one JSON object per line, on stdout.
pub struct Out {
    pub json: bool,
}

static STDOUT_GONE: AtomicBool = AtomicBool::new(false);

/// Whether a write to stdout has failed (the reader went away).
pub fn stdout_gone() -> bool {
    STDOUT_GONE.load(Ordering::Relaxed)
}

impl Out {
    fn line(&self, text: &str) {
        let mut o = std::io::stdout().lock();
        if writeln!(o, "{text}").and_then(|_| o.flush()).is_err() {
            STDOUT_GONE.store(true, Ordering::Relaxed);
        }
    }

    pub fn json_line(&self, v: Value) {
        self.line(&v.to_string());
    }

    /// Prints `v` with `--json`, else the human text (if any).
    pub fn emit(&self, v: Value, human: impl FnOnce() -> Option<String>) {
        if self.json {
            self.json_line(v);
        } else if let Some(text) = human() {
            self.line(&text);
        }
    }
}

/// A client logged in for one command.
pub struct Session {
    pub client: Client,
    rx: Receiver<Event>,
    pub out: Out,
    pub user: String,
    /// `--timeout` measured from the start: the command must reach its goal by then.
    pub deadline: Option<Instant>,
}

/// How long the event loop waits before looking at signals again.
const SLICE: Duration = Duration::from_millis(50);

impl Session {
    /// Creates the client, applies `options` (plus TLS from the flags), logs in and waits for
    /// the result.
    pub fn login(g: &Global, options: &[(&str, String)]) -> Result<Session, Fail> {
        let start = Instant::now();
        let app_id = g
            .app_id
            .clone()
            .ok_or_else(|| Fail::Usage("no app ID: give --app-id or set CRVM_APP_ID".to_owned()))?;
        if g.secret.is_none() && g.token.is_none() {
            return Err(Fail::Usage(
                "no credentials: give --secret (CRVM_SECRET) or --token (CRVM_TOKEN)".to_owned(),
            ));
        }
        let (tx, rx) = mpsc::channel::<Event>();
        let handler = move |ev: &Event| {
            let _ = tx.send(ev.clone());
        };
        let client = Client::new(&g.server, Box::new(handler))
            .map_err(|_| Fail::Usage(format!("bad server address {:?}", g.server)))?;
        let mut opts: Vec<(&str, String)> = Vec::new();
        if g.tls {
            opts.push(("tls", "on".to_owned()));
        }
        if let Some(ca) = &g.tls_ca {
            opts.push(("tls_ca_file", ca.clone()));
        }
        opts.extend(options.iter().cloned());
        for (k, v) in &opts {
            client
                .set_option(k, v)
                .map_err(|_| Fail::Usage(format!("cannot use {v:?} as {k}")))?;
        }
        let nick = g.nickname.clone().unwrap_or_else(|| g.user.clone());
        let params = LoginParams {
            auth_acnt: &app_id,
            auth_pswd: g.secret.as_deref().unwrap_or(""),
            nick_name: &nick,
            priv_acnt: &g.user,
            priv_auth_code: g.token.as_deref().unwrap_or(""),
            cookie: "",
        };
        client.login(&params).map_err(|c| Fail::code("login", c))?;
        let mut s = Session {
            client,
            rx,
            out: Out { json: g.json },
            user: String::new(),
            deadline: g.timeout.map(|t| start + t),
        };
        let deadline = s.deadline;
        s.user = s.wait(deadline, "logging in", |_, ev| match ev {
            Event::Login { result, .. } => done("login failed", result),
            _ => Ok(None),
        })?;
        Ok(s)
    }

    /// Runs events through `f` until it returns a value; fails on a signal, on `line_off`, or
    /// when `deadline` passes (as [`Fail::Timeout`] with `what`).
    pub fn wait<T>(
        &mut self,
        deadline: Option<Instant>,
        what: &str,
        f: impl FnMut(&mut Session, Event) -> Result<Option<T>, Fail>,
    ) -> Result<T, Fail> {
        self.wait_until(deadline, true, f)?
            .ok_or_else(|| Fail::Timeout(what.to_owned()))
    }

    /// Like [`Session::wait`], but a passed deadline is `Ok(None)`; with `interruptible` false
    /// a pending signal is ignored (for the short clean-up after one).
    pub fn wait_until<T>(
        &mut self,
        deadline: Option<Instant>,
        interruptible: bool,
        mut f: impl FnMut(&mut Session, Event) -> Result<Option<T>, Fail>,
    ) -> Result<Option<T>, Fail> {
        loop {
            if interruptible {
                if let Some(sig) = signals::pending() {
                    return Err(Fail::Interrupted(sig));
                }
                if stdout_gone() {
                    return Err(Fail::Output);
                }
            }
            let mut slice = SLICE;
            if let Some(d) = deadline {
                let now = Instant::now();
                if now >= d {
                    return Ok(None);
                }
                slice = slice.min(d - now);
            }
            match self.rx.recv_timeout(slice) {
                Ok(Event::LineOff { code }) => return Err(Fail::Lost(code)),
                // A blip is resumed by the library; the user is told on stderr, so that
                // stdout (and `--json` output) stays what the command prints.
                Ok(Event::LineReconnecting { code }) => {
                    eprintln!("crvm: connection lost (code {}), resuming", code.get());
                }
                Ok(Event::LineResumed { offline_ms }) => {
                    eprintln!("crvm: connection resumed after {offline_ms} ms");
                }
                Ok(ev) => {
                    if let Some(v) = f(self, ev)? {
                        return Ok(Some(v));
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(Fail::Lost(code(CRVIDEOSDK_CONNECTIONLOST)))
                }
            }
        }
    }

    /// A deadline for clean-up after an interrupt or timeout (hanging up, cancelling).
    pub fn cleanup_deadline() -> Option<Instant> {
        Some(Instant::now() + Duration::from_secs(3))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Logs out cleanly (the server tells subscribers and call peers) and joins the threads.
        self.client.destroy();
    }
}
