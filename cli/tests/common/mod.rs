//! Shared by the CLI's integration tests: a `crvm-server --dev` per test on a free port (launched
//! by `crvm-testkit`), `crvm` processes whose stdout lines are read as they come, and guards that
//! kill every process on drop (so a failing assertion leaves nothing behind).

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The binary under test.
pub const CRVM: &str = env!("CARGO_BIN_EXE_crvm");

/// Upper bound for any single wait; only reached when something is broken.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub use crvm_testkit::TmpDir;

/// A `crvm-server --dev` on a free port in its own data directory, killed on drop.
pub struct Server {
    server: crvm_testkit::Server,
    pub addr: String,
    pub dir: TmpDir,
}

impl Server {
    pub fn start() -> Server {
        let dir = TmpDir::new();
        let data = dir.path("data");
        let args = [
            "--dev",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
        ];
        // `--dev` runs without a config file.
        let server = crvm_testkit::Server::launch(
            crvm_testkit::server_bin(),
            &args,
            &[],
            dir.path("server.log"),
            PathBuf::new(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        Server {
            addr: server.addr.to_string(),
            server,
            dir,
        }
    }

    /// `crvm ARGS` against this server as `user` of the demo tenant (credentials and address
    /// from the environment, as a user would set them).
    pub fn crvm(&self, user: &str, args: &[&str]) -> Command {
        let mut c = crvm_cmd(&self.addr);
        if !user.is_empty() {
            c.env("CRVM_USER", user);
        }
        c.args(args);
        c
    }

    /// Runs `crvm ARGS` as `user` to completion.
    pub fn run(&self, user: &str, args: &[&str]) -> Run {
        Run::from(self.crvm(user, args).output().unwrap())
    }

    /// Starts `crvm ARGS` as `user` in the background.
    pub fn spawn(&self, user: &str, args: &[&str]) -> Proc {
        Proc::spawn(self.crvm(user, args))
    }

    /// Sends `sig` to the server.
    pub fn signal(&self, sig: i32) {
        self.server.proc.signal(sig);
    }
}

/// A `crvm` command with a clean environment: the demo tenant's credentials and `addr`.
pub fn crvm_cmd(addr: &str) -> Command {
    let mut c = Command::new(CRVM);
    for var in [
        "CRVM_SERVER",
        "CRVM_APP_ID",
        "CRVM_SECRET",
        "CRVM_TOKEN",
        "CRVM_USER",
        "CRVM_NICKNAME",
        "CRVM_TLS_CA",
    ] {
        c.env_remove(var);
    }
    c.env("CRVM_SERVER", addr)
        .env("CRVM_APP_ID", "demo")
        .env("CRVM_SECRET", "demo-secret")
        .stdin(Stdio::null());
    c
}

/// A finished `crvm` run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: exit_code(o.status),
            stdout: String::from_utf8(o.stdout).unwrap(),
            stderr: String::from_utf8(o.stderr).unwrap(),
        }
    }
}

impl Run {
    /// Every stdout line parsed as a JSON object.
    pub fn json(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
            .collect()
    }
}

/// The exit code, or 128 + the signal that killed the process.
pub fn exit_code(s: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
}

/// A background `crvm` whose stdout lines arrive on a channel; killed on drop.
pub struct Proc {
    child: Child,
    lines: Receiver<String>,
    pub seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<std::thread::JoinHandle<()>>,
}

impl Proc {
    pub fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let out = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in out.lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let (mut err, sink) = (child.stderr.take().unwrap(), Arc::clone(&stderr));
        let stderr_reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = err.read(&mut buf) {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Proc {
            child,
            lines,
            seen: Vec::new(),
            stderr,
            stderr_reader: Some(stderr_reader),
        }
    }

    /// Waits for a stdout line matching `pred` and returns it.
    pub fn expect(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + PATIENCE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no {what} within {PATIENCE:?}; stdout so far: {:?}",
                        self.seen
                    )
                }
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "crvm exited without {what}; stdout: {:?}; stderr: {}",
                    self.seen,
                    self.stderr.lock().unwrap()
                ),
            }
        }
    }

    /// Waits for a JSON line whose `event` is `event` and for which `pred` holds.
    pub fn expect_json(
        &mut self,
        event: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let line = self.expect(event, |l| {
            serde_json::from_str::<serde_json::Value>(l)
                .map(|v| v["event"] == event && pred(&v))
                .unwrap_or(false)
        });
        serde_json::from_str(&line).unwrap()
    }

    /// Waits for the process to end (its stdout closes first) and returns the exit code; the
    /// remaining stdout lines are added to `seen`.
    pub fn finish(&mut self) -> i32 {
        let end = Instant::now() + PATIENCE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("crvm did not exit; stdout: {:?}", self.seen)
                }
            }
        }
        let code = exit_code(self.child.wait().unwrap());
        if let Some(h) = self.stderr_reader.take() {
            let _ = h.join();
        }
        code
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
