//! A `crvm-server` process: started with a config in a directory, its address read from its
//! first stdout line, its stderr in a log file, killed on drop; and the tenants of the tests.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crvm_proto::raw::{RawClient, PATIENCE};
use crvm_proto::ServerMsg;

use crate::{Proc, TmpDir};

/// Tenants of [`config`]: one per auth mode plus a second secret tenant.
pub const TENANTS: &str = r#"
[[tenant]]
app_id = "demo"
secret = "demo-secret"

[[tenant]]
app_id = "tok"
secret = "tok-secret"
auth = "token"

[[tenant]]
app_id = "either"
secret = "either-secret"
auth = "either"

[[tenant]]
app_id = "acme"
secret = "acme-secret"
auth = "secret"
"#;

/// A config file text: `top` (top-level keys) followed by [`TENANTS`].
pub fn config(top: &str) -> String {
    format!("pub_meet_url_base = \"https://meet.test/m/\"\n{top}\n{TENANTS}")
}

/// The workspace's `crvm-server`: `$CRVM_SERVER_BIN`, else the one in the target directory of
/// the running test (`target/<profile>/deps/<test>` → `target/<profile>/crvm-server`). The
/// server's own tests always find it there (cargo builds a package's binaries before its
/// integration tests); another package's tests may run before it is built, so it is built
/// once here then (a no-op when it is fresh).
pub fn server_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("CRVM_SERVER_BIN") {
            return PathBuf::from(p);
        }
        let exe = std::env::current_exe().expect("the test's path");
        let mut dir = exe.parent().expect("a directory").to_path_buf();
        if dir.file_name() == Some(OsStr::new("deps")) {
            dir.pop();
        }
        let bin = dir.join("crvm-server");
        if !bin.is_file() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
            let mut cmd = Command::new(cargo);
            cmd.args(["build", "-p", "crvm-server"])
                .current_dir(env!("CARGO_MANIFEST_DIR"));
            if dir.file_name() == Some(OsStr::new("release")) {
                cmd.arg("--release");
            }
            let ok = cmd.status().map(|s| s.success()).unwrap_or(false);
            assert!(
                ok && bin.is_file(),
                "could not build {}: run `cargo build -p crvm-server` first",
                bin.display()
            );
        }
        bin
    })
}

/// A running server, killed on drop.
pub struct Server {
    pub proc: Proc,
    pub addr: SocketAddr,
    /// Its stdout after the first line (the monitor's address comes next when it has one).
    pub stdout: BufReader<ChildStdout>,
    pub log: PathBuf,
    pub config: PathBuf,
}

impl Server {
    /// Starts `bin` with `args` (and `env` set), its stderr to `log`, and waits for its
    /// listening line. `config` is the config file it was given, for the tests that rewrite it.
    pub fn launch<A: AsRef<OsStr>>(
        bin: &Path,
        args: &[A],
        env: &[(&str, &str)],
        log: PathBuf,
        config: PathBuf,
    ) -> Result<Server, String> {
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?);
        let mut proc = Proc::spawn(cmd, "crvm-server")?;
        let mut stdout = BufReader::new(proc.stdout.take().expect("piped"));
        let mut line = String::new();
        let _ = stdout.read_line(&mut line);
        let addr = line
            .strip_prefix("crvm-server listening on ")
            .and_then(|a| a.trim_end().parse().ok());
        let Some(addr) = addr else {
            return Err(format!(
                "crvm-server: bad first line {line:?}; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ));
        };
        Ok(Server {
            proc,
            addr,
            stdout,
            log,
            config,
        })
    }

    /// Starts a server with `config_text` in a fresh directory that `dir` keeps alive.
    pub fn start(dir: &TmpDir, config_text: &str) -> Server {
        let config = dir.write("crvm.toml", config_text);
        let config_arg = config.to_str().unwrap().to_owned();
        Server::spawn(
            dir,
            &[
                "--listen",
                "127.0.0.1:0",
                "--config",
                &config_arg,
                "--data-dir",
                dir.path("data").to_str().unwrap(),
            ],
            config,
        )
    }

    /// Spawns the binary with `args` and waits for its listening line.
    pub fn spawn(dir: &TmpDir, args: &[&str], config: PathBuf) -> Server {
        Server::spawn_env(dir, args, config, &[])
    }

    /// [`Server::spawn`] with environment variables `env` set.
    pub fn spawn_env(dir: &TmpDir, args: &[&str], config: PathBuf, env: &[(&str, &str)]) -> Server {
        static N: AtomicUsize = AtomicUsize::new(0);
        let log = dir.path(&format!("server-{}.log", N.fetch_add(1, Ordering::Relaxed)));
        Server::launch(server_bin(), args, env, log, config).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn connect(&self) -> RawClient {
        RawClient::connect(self.addr)
    }

    /// A client that has said hello and logged in as `user` of the secret tenant `app`.
    pub fn login(&self, app: &str, user: &str) -> RawClient {
        let mut c = self.connect();
        c.hello();
        let secret = format!("{app}-secret");
        match c.login(app, &secret, user, "") {
            ServerMsg::Res {
                result: crvm_proto::Outcome::Login { user_id },
                ..
            } => assert_eq!(user_id, user),
            other => panic!("login of {user}: {other:?}"),
        }
        c
    }

    /// Sends `sig`, as `kill` takes it (`-TERM`, `-KILL`, …).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.proc.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    }

    /// Waits for the process to exit (bounded by [`PATIENCE`]).
    pub fn wait(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.proc.try_wait().unwrap() {
                return status;
            }
            assert!(start.elapsed() < PATIENCE, "server did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `n` lines of the log, for error messages.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log_text();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Whether the log says `needle` within `patience`: for a line the server writes after an
    /// event the caller saw (a TLS failure is logged after the socket is closed; a node logs
    /// "joined" once it is in its cluster). Polls the file: there is no other signal from
    /// another process's log.
    pub fn log_says_within(&self, needle: &str, patience: Duration) -> bool {
        let deadline = Instant::now() + patience;
        while !self.log_text().contains(needle) {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// [`Server::log_says_within`] a few seconds.
    pub fn log_says(&self, needle: &str) -> bool {
        self.log_says_within(needle, Duration::from_secs(10))
    }
}
