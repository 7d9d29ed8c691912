//! Handshake, protocol errors, heartbeats and login (docs/API.md §3.1, §4, §7).

mod common;

use common::*;
use crvm_proto::{ClientMsg, Encoder, Kind, Op, ServerMsg};

fn server(dir: &TmpDir) -> Server {
    Server::start(dir, &config(""))
}

#[test]
fn welcome_announces_the_limits() {
    let dir = TmpDir::new();
    let s = Server::start(
        &dir,
        &config("heartbeat_ms = 4000\nmax_buffer_bytes = 1234\nmax_file_bytes = 5678"),
    );
    let mut c = s.connect();
    assert_eq!(
        c.hello(),
        ServerMsg::Welcome {
            ver: crvm_proto::PROTOCOL_VERSION,
            heartbeat_ms: 4000,
            max_buffer_bytes: 1234,
            max_file_bytes: 5678,
        }
    );
}

#[test]
fn version_mismatch_gets_close_4_then_eof() {
    let dir = TmpDir::new();
    let s = server(&dir);
    let mut c = s.connect();
    c.send(&ClientMsg::Hello {
        ver: crvm_proto::PROTOCOL_VERSION + 1,
        agent: "future".into(),
    });
    c.expect_close(4);
    // A future hello may look different; its version is still understood.
    let mut c = s.connect();
    let future = format!(
        r#"{{"t":"hello","c":{{"ver":{},"caps":{{"x":1}}}}}}"#,
        crvm_proto::PROTOCOL_VERSION + 1
    );
    let bytes = raw_control(&mut c, future.as_bytes());
    c.raw(&bytes);
    c.expect_close(4);
    // A version 3 client, which knows no `res`, is told to upgrade before anything is answered.
    let mut c = s.connect();
    c.send(&ClientMsg::Hello {
        ver: 3,
        agent: "crvm 3".into(),
    });
    c.expect_close(4);
    // So is a version 1 hello, which had no `c` envelope: an old client learns it must upgrade.
    let mut c = s.connect();
    let bytes = raw_control(&mut c, br#"{"t":"hello","ver":1,"agent":"crvm 1"}"#);
    c.raw(&bytes);
    c.expect_close(4);
}

#[test]
fn huge_length_prefix_gets_close_6_then_eof() {
    let dir = TmpDir::new();
    let s = server(&dir);
    let mut c = s.connect();
    c.hello();
    c.send_huge_length_prefix();
    c.expect_close(6);
    // The server is unaffected.
    s.login("demo", "alice");
}

#[test]
fn a_length_prefix_over_the_maximum_is_refused_from_its_four_bytes() {
    // No hello, no rest of the header: the four bytes of the length alone must be enough,
    // long before the (here very long) hello and frame deadlines.
    let dir = TmpDir::new();
    let s = Server::start(
        &dir,
        &config("hello_timeout_ms = 600000\nframe_timeout_ms = 600000"),
    );
    let mut c = s.connect();
    c.raw(&u32::MAX.to_be_bytes());
    c.expect_close(6);
}

#[test]
fn request_before_login_gets_close_12() {
    let dir = TmpDir::new();
    let s = server(&dir);
    let mut c = s.connect();
    c.hello();
    c.send_req(1, Op::GetMeetings);
    c.expect_close(12);
    // A cmd is no request, but it needs a session all the same.
    let mut c = s.connect();
    c.hello();
    c.send_attached(
        &ClientMsg::Cmd {
            n: 1,
            to: "bob".into(),
        },
        b"x",
    );
    c.expect_close(12);
}

#[test]
fn malformed_input_gets_close_6() {
    let dir = TmpDir::new();
    let s = server(&dir);
    let bad_payloads: [&[u8]; 7] = [
        b"{not json",
        br#"{"t":"launch_missiles","c":{"id":1}}"#,
        br#"{"t":"req","c":{"id":1,"op":{"t":"launch_missiles"}}}"#,
        br#"{"t":"req","c":{"id":"one","op":{"t":"set_dnd","c":{"dnd":1}}}}"#,
        // A version 1 request (no envelope) after a version 2 hello.
        br#"{"t":"set_dnd","id":1,"dnd":1}"#,
        br#"{"t":"req","c":{"id":1}}"#,
        b"",
    ];
    for json in bad_payloads {
        let mut c = s.connect();
        c.hello();
        let bytes = raw_control(&mut c, json);
        c.raw(&bytes);
        c.expect_close(6);
    }
    // A first frame that is not Hello.
    let mut c = s.connect();
    c.send_req(1, Op::GetMeetings);
    c.expect_close(6);
    let mut c = s.connect();
    c.send_kind(Kind::Ping);
    c.expect_close(6);
    // A numbered frame from the future (a gap), and a numbered heartbeat.
    for (kind, seq) in [(Kind::Control, 99), (Kind::Ping, 2)] {
        let mut c = s.connect();
        c.hello();
        let len = if kind == Kind::Control { 4 } else { 0 };
        let mut bytes = crvm_proto::frame::header_at(kind, seq, 0, len).to_vec();
        bytes.resize(bytes.len() + len, 0);
        c.raw(&bytes);
        c.expect_close(6);
    }
    // A numbered frame already had is discarded, not handled twice: the connection goes on.
    let mut c = s.connect();
    c.hello();
    let mut again = Encoder::new();
    c.raw(&again.control(0, br#"{"t":"hello","c":{"ver":5,"agent":""}}"#, &[]));
    assert!(matches!(
        c.login("demo", "demo-secret", "dup", ""),
        ServerMsg::Res {
            result: crvm_proto::Outcome::Login { .. },
            ..
        }
    ));
    // Hello twice.
    let mut c = s.connect();
    c.hello();
    c.send(&ClientMsg::Hello {
        ver: crvm_proto::PROTOCOL_VERSION,
        agent: String::new(),
    });
    c.expect_close(6);
}

#[test]
fn ping_gets_pong_with_ack() {
    let dir = TmpDir::new();
    let s = server(&dir);
    let mut c = s.connect();
    c.hello();
    // Heartbeats are unnumbered: the pong acknowledges the last numbered frame, the hello.
    let handled = c.codec.next_seq() - 1;
    c.send_kind(Kind::Ping);
    let f = c.frame().unwrap();
    assert_eq!((f.kind, f.seq), (Kind::Pong, 0));
    assert_eq!(f.ack, handled);
}

#[test]
fn server_pings_and_drops_a_silent_client() {
    let dir = TmpDir::new();
    // Generous enough that a loaded machine still answers in time (dropped after 1.2 s).
    let s = Server::start(&dir, &config("heartbeat_ms = 400"));
    // A client that never answers is dropped and goes offline.
    let mut mute = s.login("demo", "mute");
    let mut seen_ping = false;
    while let Some(f) = mute.frame() {
        assert_eq!(f.kind, Kind::Ping);
        seen_ping = true;
    }
    assert!(seen_ping);
    // One that answers pings stays connected past several intervals.
    let mut alive = s.login("demo", "alive");
    let mut pings = 0;
    while pings < 4 {
        let f = alive.frame().unwrap();
        if f.kind == Kind::Ping {
            pings += 1;
            alive.send_kind(Kind::Pong);
        }
    }
    assert_eq!(alive.statuses(), vec![st("alive", 1, 0)]);
}

#[test]
fn wrong_secret_or_unknown_app_is_7_then_closed() {
    let dir = TmpDir::new();
    let s = server(&dir);
    for (app, secret) in [("demo", "wrong"), ("nope", "demo-secret"), ("demo", "")] {
        let mut c = s.connect();
        c.hello();
        assert_eq!(c.login(app, secret, "alice", ""), ServerMsg::reply(2, 7));
        c.expect_eof();
    }
    assert!(!s.log_text().contains("demo-secret"));
}

#[test]
fn over_long_fields_are_5() {
    let dir = TmpDir::new();
    let s = server(&dir);
    let long = "x".repeat(129);
    for (user, token) in [(long.as_str(), ""), ("alice", &*"t".repeat(8193))] {
        let mut c = s.connect();
        c.hello();
        assert_eq!(
            c.login("demo", "demo-secret", user, token),
            ServerMsg::reply(2, 5)
        );
        c.expect_eof();
    }
    // 128 bytes is fine.
    let mut c = s.connect();
    c.hello();
    let max = "y".repeat(128);
    assert!(matches!(
        c.login("demo", "demo-secret", &max, ""),
        ServerMsg::Res {
            result: crvm_proto::Outcome::Login { .. },
            ..
        }
    ));
}

#[test]
fn empty_user_id_gets_a_generated_one() {
    let dir = TmpDir::new();
    let s = server(&dir);
    let mut ids = Vec::new();
    let mut keep = Vec::new();
    for _ in 0..2 {
        let mut c = s.connect();
        c.hello();
        match c.login("demo", "demo-secret", "", "") {
            ServerMsg::Res {
                result: crvm_proto::Outcome::Login { user_id },
                ..
            } => ids.push(user_id),
            other => panic!("{other:?}"),
        }
        // Keep the connection open so both are online at once.
        keep.push(c);
    }
    assert_ne!(ids[0], ids[1]);
    for id in &ids {
        assert!(id.starts_with("u-") && id.len() == 18, "{id}");
    }
}

#[test]
fn second_login_on_a_connection_is_9_and_keeps_it() {
    let dir = TmpDir::new();
    let s = server(&dir);
    let mut c = s.login("demo", "alice");
    assert_eq!(
        c.login("demo", "demo-secret", "alice", ""),
        ServerMsg::reply(3, 9)
    );
    assert_eq!(c.statuses(), vec![st("alice", 1, 0)]);
}

#[test]
fn token_tenant_codes() {
    let dir = TmpDir::new();
    let s = server(&dir);
    let token = cli_token(&s.config, "tok", "alice", 60);
    let attempt = |secret: &str, user: &str, token: &str| {
        let mut c = s.connect();
        c.hello();
        let r = c.login("tok", secret, user, token);
        (r, c)
    };
    // No token: 14, even with the right secret.
    let (r, mut c) = attempt("tok-secret", "alice", "");
    assert_eq!(r, ServerMsg::reply(2, 14));
    c.expect_eof();
    // Someone else's token, a forged one, a malformed one: 21.
    for (user, t) in [
        ("bob", token.clone()),
        ("alice", format!("{}x", token)),
        ("alice", "garbage".to_owned()),
        ("", token.clone()),
    ] {
        let (r, mut c) = attempt("", user, &t);
        assert_eq!(r, ServerMsg::reply(2, 21), "{user} {t}");
        c.expect_eof();
    }
    // Expired: 18.
    let old = crvm_server::auth::mint("tok-secret", "tok", "alice", 1_000_000);
    let (r, mut c) = attempt("", "alice", &old);
    assert_eq!(r, ServerMsg::reply(2, 18));
    c.expect_eof();
    // The minted token works (the secret field is ignored).
    let (r, mut c) = attempt("whatever", "alice", &token);
    assert_eq!(
        r,
        ServerMsg::Res {
            re: 2,
            result: crvm_proto::Outcome::Login {
                user_id: "alice".into()
            }
        }
    );
    assert_eq!(c.statuses(), vec![st("alice", 1, 0)]);
    assert!(!s.log_text().contains(&token), "tokens are never logged");
}

#[test]
fn either_tenant_takes_token_or_secret() {
    let dir = TmpDir::new();
    let s = server(&dir);
    let token = cli_token(&s.config, "either", "alice", 60);
    let mut a = s.connect();
    a.hello();
    assert!(matches!(
        a.login("either", "", "alice", &token),
        ServerMsg::Res {
            result: crvm_proto::Outcome::Login { .. },
            ..
        }
    ));
    let mut b = s.connect();
    b.hello();
    assert!(matches!(
        b.login("either", "either-secret", "bob", ""),
        ServerMsg::Res {
            result: crvm_proto::Outcome::Login { .. },
            ..
        }
    ));
    let mut c = s.connect();
    c.hello();
    assert_eq!(
        c.login("either", "either-secret", "carol", "1.AAAA"),
        ServerMsg::reply(2, 21)
    );
}

#[test]
fn logout_replies_then_closes() {
    let dir = TmpDir::new();
    let s = server(&dir);
    let mut c = s.login("demo", "alice");
    assert_eq!(c.code(Op::Logout), 0);
    c.expect_eof();
    let mut d = s.login("demo", "bob");
    assert_eq!(d.statuses(), vec![st("bob", 1, 0)]);
}
