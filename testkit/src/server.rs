//! Helpers shared by the integration tests: temp dirs, a spawned `crvm-server`, and a blocking
//! protocol client built on crvm-proto.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crvm_proto::frame::control_prefix;
use crvm_proto::{Kind, ServerMsg, UserStatus};

pub mod cluster;
pub mod http;
pub mod user;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_crvm-server");

/// Upper bound for any single wait; only reached when something is broken.
pub use crvm_proto::raw::PATIENCE;

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

/// A fresh directory under the system temp dir, removed on drop.
pub struct TmpDir(pub PathBuf);

impl TmpDir {
    pub fn new() -> TmpDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let p = std::env::temp_dir().join(format!(
            "crvm-it-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TmpDir(p)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes `text` to `name` and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the binary to completion with `args` (for the failure and `token` cases).
pub fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Mints a token through `crvm-server token`.
pub fn cli_token(config: &Path, app: &str, user: &str, ttl: u64) -> String {
    let out = run(&[
        "token",
        "--config",
        config.to_str().unwrap(),
        "--app",
        app,
        "--user",
        user,
        "--ttl",
        &ttl.to_string(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let token = lines.next().unwrap().to_owned();
    assert_eq!(lines.next(), None, "one line only");
    token
}

/// A running server, killed on drop.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub stdout: BufReader<ChildStdout>,
    pub log: PathBuf,
    pub config: PathBuf,
}

impl Server {
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
        let mut child = Command::new(BIN)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let addr = line
            .strip_prefix("crvm-server listening on ")
            .and_then(|a| a.strip_suffix('\n'))
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!(
                    "bad first line {line:?}; log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            })
            .parse()
            .unwrap();
        Server {
            child,
            addr,
            stdout,
            log,
            config,
        }
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// A fresh connection's login with `secret`: 0, or the code it was refused with.
    pub fn login_code(&self, app: &str, secret: &str, user: &str) -> i32 {
        login_code(&mut self.connect(), app, secret, user)
    }

    /// A client that has said hello and logged in as `user` of the secret tenant `app`.
    pub fn login(&self, app: &str, user: &str) -> Client {
        let mut c = self.connect();
        c.hello();
        let secret = format!("{app}-secret");
        match c.login(app, &secret, user, "") {
            ServerMsg::LoginOk { user_id, .. } => assert_eq!(user_id, user),
            other => panic!("login of {user}: {other:?}"),
        }
        c
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    }

    /// Waits for the process to exit (bounded by [`PATIENCE`]).
    pub fn wait(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(start.elapsed() < PATIENCE, "server did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the log says `needle` within a few seconds: for a line the server writes after
    /// the event the test saw (a TLS failure is logged after the socket is closed). Polls the
    /// file: there is no other signal from another process's log.
    #[allow(dead_code)]
    pub fn log_says(&self, needle: &str) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !self.log_text().contains(needle) {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        true
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The blocking protocol client of the tests (the project's one raw client). Not every test
/// binary uses every name.
#[allow(unused_imports)]
pub use crvm_proto::raw::{login_op, re_of, RawClient as Client};

/// Asserts that the answer to a status request is the next message on `c`: nothing else (a
/// stray `cmd_in`, `cmd_done`, `start` or `incoming`) was queued to it before.
/// Says hello and logs in on `c`: 0, or the code the login was refused with.
pub fn login_code(c: &mut Client, app: &str, secret: &str, user: &str) -> i32 {
    c.hello();
    match c.login(app, secret, user, "") {
        ServerMsg::LoginOk { .. } => 0,
        ServerMsg::Reply { code, .. } => code,
        other => panic!("{other:?}"),
    }
}

pub fn assert_nothing_pending(c: &mut Client, who: &str) {
    let id = c.id();
    c.send_req(id, crvm_proto::Op::GetUserStatus);
    match c.msg() {
        ServerMsg::Statuses { re, .. } => assert_eq!(re, id),
        other => panic!("{who}: unexpected {other:?}"),
    }
}

/// A status object.
pub fn st(user: &str, status: i32, dnd: i32) -> UserStatus {
    UserStatus {
        user_id: user.into(),
        user_status: status,
        dnd_type: dnd,
    }
}

/// The bytes of a control frame of `c` whose JSON text is `json` as is (malformed, foreign or
/// old-format messages, which [`Client::send`] cannot build). Advances `c`'s sequence number.
pub fn raw_control(c: &mut Client, json: &[u8]) -> Vec<u8> {
    c.codec.frame(Kind::Control, &[&control_prefix(json), json])
}
