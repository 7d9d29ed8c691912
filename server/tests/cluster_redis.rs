//! Redis faults no user sees (SPEC §4.1: readiness, Redis faults): a node announces itself
//! only once it can serve, a login waits while its node is briefly cut off from Redis, and
//! Redis dropping the nodes' connections under traffic makes requests wait, never fail, act
//! twice or never.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};

use common::cluster::{Cluster, Redis};
use common::*;
use crvm_proto::ServerMsg;
use crvm_testkit::Proc;

/// Node timeout of these tests (the smallest allowed is 500 ms).
const TIMEOUT_MS: u64 = 2000;

fn closed_with(c: &mut Client, code: i32) {
    loop {
        match c.msg() {
            ServerMsg::Close { code: got, .. } => {
                assert_eq!(got, code);
                return;
            }
            ServerMsg::UserStatus(_) => {}
            other => panic!("expected close {code}, got {other:?}"),
        }
    }
}

/// Whatever the pipe holds now, without waiting.
fn read_now(pipe: &mut std::process::ChildStdout) -> String {
    let fd = pipe.as_raw_fd();
    // SAFETY: fcntl on a descriptor this process owns.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    let mut buf = [0u8; 256];
    let got = match pipe.read(&mut buf) {
        Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => String::new(),
        Err(e) => panic!("{e}"),
    };
    // SAFETY: as above.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
    }
    got
}

#[test]
fn a_node_announces_itself_only_once_it_has_joined() {
    let dir = TmpDir::new();
    let sock = dir.path("redis.sock");
    let notify = dir.path("notify.sock");
    let ready = UnixDatagram::bind(&notify).unwrap();
    ready.set_nonblocking(true).unwrap();
    let config = dir.write(
        "n1.toml",
        &format!(
            "[cluster]\nredis = \"unix://{}\"\nnode_id = \"n1\"\nnode_timeout_ms = {TIMEOUT_MS}\n{TENANTS}",
            sock.display()
        ),
    );
    let log = dir.path("n1.log");
    let mut cmd = Command::new(BIN);
    cmd.args(["--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path("data"))
        .env("NOTIFY_SOCKET", &notify)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut node = Proc::spawn(cmd, "crvm-server").unwrap();
    let mut out = node.stdout.take().unwrap();
    // It runs and tries to reach Redis, which is not there yet: it must not say it listens,
    // nor that it is ready.
    let says = |needle: &str| std::fs::read_to_string(&log).unwrap().contains(needle);
    let deadline = std::time::Instant::now() + PATIENCE;
    while !says("cluster node n1") {
        assert!(
            std::time::Instant::now() < deadline,
            "the node never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(read_now(&mut out), "", "announced before it joined");
    let mut buf = [0u8; 64];
    assert!(ready.recv(&mut buf).is_err(), "READY=1 before it joined");
    // Redis comes: the node joins, then announces itself, and serves at once.
    let _redis = Redis::launch(&dir.0).unwrap();
    let mut out = BufReader::new(out);
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr: std::net::SocketAddr = line
        .strip_prefix("crvm-server listening on ")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    ready.set_nonblocking(false).unwrap();
    ready.set_read_timeout(Some(PATIENCE)).unwrap();
    let n = ready.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"READY=1\n");
    assert!(says("joined"));
    let mut alice = Client::connect(addr);
    assert_eq!(login_code(&mut alice, "demo", "demo-secret", "alice"), 0);
}

#[test]
fn a_login_waits_while_its_node_is_cut_off_from_redis() {
    let mut c = Cluster::start(1, TIMEOUT_MS, "");
    let mut alice = c.node(0).login("demo", "alice");
    // Redis gone past the node timeout: the node closes its sessions and takes no logins.
    c.redis.shutdown();
    closed_with(&mut alice, 207);
    // A login now waits for Redis rather than failing...
    let mut bob = c.node(0).connect();
    bob.hello();
    bob.send_req(1, login_op("demo", "demo-secret", "bob", ""));
    // ...which comes back within the node timeout.
    c.redis.restart();
    match bob.reply() {
        ServerMsg::Res {
            re: 1,
            result: crvm_proto::Outcome::Login { user_id },
        } => assert_eq!(user_id, "bob"),
        other => panic!("login of bob: {other:?}"),
    }
    assert_eq!(bob.statuses().len(), 1);
}
