//! Helpers shared by the integration tests: temp dirs, a spawned `crvm-server`, and a blocking
//! protocol client built on crvm-proto.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crvm_proto::frame::MAX_PAYLOAD_TO_CLIENT;
use crvm_proto::msg::to_json;
use crvm_proto::{ClientMsg, Decoder, Encoder, Frame, Kind, ServerMsg, UserStatus};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_crvm-server");

/// Upper bound for any single wait; only reached when something is broken.
pub const PATIENCE: Duration = Duration::from_secs(15);

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
        static N: AtomicUsize = AtomicUsize::new(0);
        let log = dir.path(&format!("server-{}.log", N.fetch_add(1, Ordering::Relaxed)));
        let mut child = Command::new(BIN)
            .args(args)
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
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking protocol client. Presence pushes that arrive while waiting for a reply are kept
/// for [`Client::push`], in order.
pub struct Client {
    pub stream: TcpStream,
    pub enc: Encoder,
    dec: Decoder,
    next_id: u64,
    pushes: VecDeque<UserStatus>,
    eof: bool,
    /// `ack` of the last control frame received.
    last_ack: u64,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        Client::over(TcpStream::connect(addr).unwrap())
    }

    /// A client on an already connected stream (e.g. from another source address).
    pub fn over(stream: TcpStream) -> Client {
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            enc: Encoder::new(),
            dec: Decoder::new(MAX_PAYLOAD_TO_CLIENT),
            next_id: 1,
            pushes: VecDeque::new(),
            eof: false,
            last_ack: 0,
        }
    }

    /// A fresh request ID.
    pub fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// The bytes of a control frame carrying `msg` (advances the sequence number).
    pub fn encode(&mut self, msg: &ClientMsg) -> Vec<u8> {
        let ack = self.dec.last_seq();
        self.enc.control(ack, &to_json(msg), &[])
    }

    pub fn raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    pub fn send(&mut self, msg: &ClientMsg) {
        let bytes = self.encode(msg);
        self.raw(&bytes);
    }

    /// Sends only a header announcing a 4 GiB control payload (the server must refuse it from
    /// the header alone).
    pub fn send_huge_length_prefix(&mut self) {
        let mut h = [0u8; crvm_proto::frame::HEADER_LEN];
        h[..4].copy_from_slice(&u32::MAX.to_be_bytes());
        h[4] = Kind::Control as u8;
        h[8..16].copy_from_slice(&self.enc.next_seq().to_be_bytes());
        self.raw(&h);
    }

    /// Sends `msg` with a binary attachment (a cmd's bytes).
    pub fn send_attached(&mut self, msg: &ClientMsg, attachment: &[u8]) {
        let ack = self.dec.last_seq();
        let bytes = self.enc.control(ack, &to_json(msg), attachment);
        self.raw(&bytes);
    }

    pub fn send_kind(&mut self, kind: Kind) {
        let ack = self.dec.last_seq();
        let bytes = self.enc.frame(kind, ack, &[]);
        self.raw(&bytes);
    }

    /// The next frame, or `None` at end of stream (a reset counts as the end).
    pub fn frame(&mut self) -> Option<Frame> {
        let mut buf = [0u8; 64 * 1024];
        loop {
            if let Some(f) = self.dec.next_frame().expect("server sent a bad frame") {
                return Some(f);
            }
            if self.eof {
                return None;
            }
            match self.stream.read(&mut buf) {
                Ok(0) => self.eof = true,
                Ok(n) => self.dec.feed(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    panic!("no frame from the server within {PATIENCE:?}")
                }
                Err(_) => self.eof = true,
            }
        }
    }

    /// The next control message, skipping heartbeats. Panics at end of stream.
    pub fn msg(&mut self) -> ServerMsg {
        loop {
            let f = self
                .frame()
                .expect("connection ended while a message was expected");
            match f.kind {
                Kind::Control => {
                    self.last_ack = f.ack;
                    let (json, _) = f.control().unwrap();
                    return serde_json::from_slice(json).unwrap();
                }
                Kind::Ping => self.send_kind(Kind::Pong),
                Kind::Pong => {}
                Kind::Data => panic!("unexpected data frame"),
            }
        }
    }

    /// The next message that is not a presence push; pushes are kept for [`Client::push`].
    pub fn reply(&mut self) -> ServerMsg {
        loop {
            match self.msg() {
                ServerMsg::UserStatus { status } => self.pushes.push_back(status),
                other => return other,
            }
        }
    }

    /// The next presence push.
    pub fn push(&mut self) -> UserStatus {
        if let Some(s) = self.pushes.pop_front() {
            return s;
        }
        match self.msg() {
            ServerMsg::UserStatus { status } => status,
            other => panic!("expected a status push, got {other:?}"),
        }
    }

    /// Pushes received so far and not yet taken.
    pub fn pending_pushes(&self) -> usize {
        self.pushes.len()
    }

    /// Sends the request built from a fresh ID and returns its answer, checking `re` and that
    /// the answer's frame acknowledges the request.
    pub fn request(&mut self, build: impl FnOnce(u64) -> ClientMsg) -> ServerMsg {
        let id = self.id();
        let seq = self.enc.next_seq();
        self.send(&build(id));
        let reply = self.reply();
        assert_eq!(re_of(&reply), Some(id), "{reply:?}");
        assert!(self.last_ack >= seq, "reply acks {} < {seq}", self.last_ack);
        reply
    }

    /// The code of a `Reply` to the request built from a fresh ID.
    pub fn code(&mut self, build: impl FnOnce(u64) -> ClientMsg) -> i32 {
        match self.request(build) {
            ServerMsg::Reply { code, .. } => code,
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    pub fn hello(&mut self) -> ServerMsg {
        self.send(&ClientMsg::Hello {
            ver: crvm_proto::PROTOCOL_VERSION,
            agent: "crvm-server tests".into(),
        });
        let w = self.msg();
        assert!(matches!(w, ServerMsg::Welcome { .. }), "{w:?}");
        w
    }

    pub fn login(&mut self, app: &str, secret: &str, user: &str, token: &str) -> ServerMsg {
        let id = self.id();
        self.send(&ClientMsg::Login {
            id,
            app_id: app.into(),
            secret: secret.into(),
            user_id: user.into(),
            nick: String::new(),
            token: token.into(),
        });
        let r = self.reply();
        assert_eq!(re_of(&r), Some(id), "{r:?}");
        r
    }

    /// Asserts that the next message is `Close{code}` and that the stream then ends.
    pub fn expect_close(&mut self, code: i32) {
        match self.msg() {
            ServerMsg::Close { code: c, .. } => assert_eq!(c, code),
            other => panic!("expected Close {code}, got {other:?}"),
        }
        self.expect_eof();
    }

    /// Asserts that nothing but heartbeats comes before the end of the stream.
    pub fn expect_eof(&mut self) {
        while let Some(f) = self.frame() {
            assert!(
                matches!(f.kind, Kind::Ping | Kind::Pong),
                "frame before EOF: {f:?}"
            );
        }
    }

    /// The online users of the caller's tenant.
    pub fn statuses(&mut self) -> Vec<UserStatus> {
        match self.request(|id| ClientMsg::GetUserStatus { id }) {
            ServerMsg::Statuses { list, .. } => list,
            other => panic!("{other:?}"),
        }
    }
}

/// The `re` of a reply-type message.
pub fn re_of(m: &ServerMsg) -> Option<u64> {
    match m {
        ServerMsg::Reply { re, .. }
        | ServerMsg::LoginOk { re, .. }
        | ServerMsg::Statuses { re, .. }
        | ServerMsg::MeetingCreated { re, .. }
        | ServerMsg::Meetings { re, .. } => Some(*re),
        _ => None,
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
