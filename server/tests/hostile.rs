//! Hostile clients: each is cut off (with a `close` where possible) while a well-behaved client
//! alongside keeps getting every answer and push.

mod common;

use common::*;
use crvm_proto::{Kind, Op, ServerMsg};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};

fn subscribe(c: &mut Client) {
    assert_eq!(c.code(Op::StartStatusNotify), 0);
}

/// A logged-in pair that checks the server still serves: `watcher` sees `actor`'s DND change
/// (pushes about other users, such as the attacker's own login and logout, are skipped).
fn still_served(watcher: &mut Client, actor: &mut Client, actor_id: &str, dnd: i32) {
    assert_eq!(actor.code(Op::SetDnd { dnd }), 0);
    loop {
        let push = watcher.push();
        if push.user_id == actor_id {
            assert_eq!(push, st(actor_id, 1, dnd));
            return;
        }
    }
}

#[test]
fn a_frame_that_never_completes_is_cut() {
    let dir = TmpDir::new();
    let s = Server::start(&dir, &config("frame_timeout_ms = 300"));
    let mut good = s.login("demo", "good");
    let mut other = s.login("demo", "other");
    subscribe(&mut good);
    let mut bad = s.connect();
    bad.hello();
    // The first 10 bytes of a header, then nothing: a slow drip that never ends a frame.
    let (_, frame) = bad.codec.request(Op::GetUserStatus);
    bad.raw(&frame[..10]);
    still_served(&mut good, &mut other, "other", 1);
    bad.expect_close(6);
    still_served(&mut good, &mut other, "other", 2);
    assert!(s.log_text().contains("frame not completed in time"));
}

/// The frame timeout counts from a frame's first byte, not from the first byte of a busy
/// stream: a client whose every write completes one frame and starts the next (so the server
/// never sees its buffer empty) is served for much longer than the timeout.
#[test]
fn a_stream_of_frames_that_never_leaves_the_buffer_empty_is_not_cut() {
    let dir = TmpDir::new();
    let s = Server::start(&dir, &config("frame_timeout_ms = 300"));
    let mut c = s.login("demo", "streamer");
    let mut pending = c.codec.frame(Kind::Ping, &[]);
    c.raw(&pending[..10]);
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_millis(1500) {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let next = c.codec.frame(Kind::Ping, &[]);
        let mut bytes = pending[10..].to_vec();
        bytes.extend_from_slice(&next[..10]);
        c.raw(&bytes);
        pending = next;
    }
    c.raw(&pending[10..]);
    assert_eq!(c.statuses(), vec![st("streamer", 1, 0)]);
    assert!(!s.log_text().contains("frame not completed in time"));
}

#[test]
fn a_connection_that_never_says_hello_is_cut() {
    let dir = TmpDir::new();
    let s = Server::start(&dir, &config("hello_timeout_ms = 300"));
    let mut silent = s.connect();
    let mut good = s.login("demo", "good");
    let mut other = s.login("demo", "other");
    subscribe(&mut good);
    silent.expect_close(6);
    still_served(&mut good, &mut other, "other", 3);
}

#[test]
fn a_request_flood_is_cut() {
    let dir = TmpDir::new();
    let s = Server::start(&dir, &config("max_requests_per_s = 100"));
    let mut good = s.login("demo", "good");
    let mut other = s.login("demo", "other");
    subscribe(&mut good);
    let mut flood = s.login("demo", "flood");
    let mut bytes = Vec::new();
    for _ in 0..5000 {
        bytes.extend(flood.codec.request(Op::GetUserStatus).1);
    }
    let mut writer = flood.stream.try_clone().unwrap();
    // The server may cut us off mid-write: that is the point.
    let w = std::thread::spawn(move || {
        let _ = writer.write_all(&bytes);
    });
    let mut answered = 0;
    loop {
        match flood.msg() {
            ServerMsg::Res {
                result: crvm_proto::Outcome::Statuses(_),
                ..
            } => answered += 1,
            ServerMsg::Close { code, .. } => {
                assert_eq!(code, 6);
                break;
            }
            ServerMsg::UserStatus(_) => {}
            other => panic!("{other:?}"),
        }
    }
    w.join().unwrap();
    assert!(answered < 5000, "cut before the end: {answered} answered");
    still_served(&mut good, &mut other, "other", 4);
    assert!(s.log_text().contains("request flood"));
}

/// Raises this process's open-file limit so it can hold thousands of sockets.
fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
}

#[test]
fn thousands_of_idle_connections_do_not_hurt_the_others() {
    raise_fd_limit();
    let dir = TmpDir::new();
    let s = Server::start(&dir, &config("hello_timeout_ms = 3000"));
    let idle: Vec<TcpStream> = (0..2000)
        .map(|_| TcpStream::connect(s.addr).unwrap())
        .collect();
    let mut good = s.login("demo", "good");
    let mut other = s.login("demo", "other");
    subscribe(&mut good);
    for dnd in 1..=5 {
        still_served(&mut good, &mut other, "other", dnd);
    }
    // Every idle one is told and closed once its hello time is up.
    for stream in idle {
        Client::over(stream).expect_close(6);
    }
    still_served(&mut good, &mut other, "other", 6);
}

fn connect_from(source: &str, to: SocketAddr) -> Client {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let from: SocketAddr = format!("{source}:0").parse().unwrap();
    sock.bind(&from.into()).unwrap();
    sock.connect(&to.into()).unwrap();
    Client::over(sock.into())
}

#[test]
fn failed_logins_are_limited_per_source() {
    let dir = TmpDir::new();
    let s = Server::start(&dir, &config("login_failures_per_source = 3"));
    for _ in 0..3 {
        let mut c = connect_from("127.0.0.1", s.addr);
        assert_eq!(login_code(&mut c, "demo", "wrong", "mallory"), 7);
    }
    // The right secret from the same source is refused for the rest of the minute…
    let mut c = connect_from("127.0.0.1", s.addr);
    assert_eq!(login_code(&mut c, "demo", "demo-secret", "alice"), 7);
    let mut c = connect_from("127.0.0.1", s.addr);
    assert_eq!(login_code(&mut c, "acme", "acme-secret", "alice"), 7);
    // …while another source is served.
    let mut c = connect_from("127.0.0.2", s.addr);
    assert_eq!(login_code(&mut c, "demo", "demo-secret", "alice"), 0);
    assert!(s.log_text().contains("too many failed logins"));
}

#[test]
fn failed_logins_are_limited_per_tenant() {
    let dir = TmpDir::new();
    let s = Server::start(&dir, &config("login_failures_per_tenant = 3"));
    for source in ["127.0.0.1", "127.0.0.2", "127.0.0.3"] {
        let mut c = connect_from(source, s.addr);
        assert_eq!(login_code(&mut c, "demo", "wrong", "mallory"), 7);
    }
    let mut c = connect_from("127.0.0.4", s.addr);
    assert_eq!(login_code(&mut c, "demo", "demo-secret", "alice"), 7);
    let mut c = connect_from("127.0.0.4", s.addr);
    assert_eq!(login_code(&mut c, "acme", "acme-secret", "alice"), 0);
}
