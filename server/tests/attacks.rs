//! The attack census: many connections of each hostile kind at once, against one server, while
//! a well-behaved pair keeps being served. Prints, per attack, how many connections were cut and
//! how (the `close` code they got, or only the end of the stream) and how long the cut took.
//! Every attacking connection must be cut with the code docs/API.md and docs/SECURITY.md promise.
//!
//!   cargo test -p crvm-server --test attacks -- --ignored --nocapture
//!
//! `websocket_attack_census` does the same to the WebSocket listener: handshakes that never
//! finish, pages no tenant allows, messages that are not one frame, oversized messages, floods.
//!
//! Ignored in the plain `cargo test` run (the per-attack tests are in hostile.rs and
//! session.rs); `.ci/run` runs it to print the figures.

mod common;

use common::*;
use crvm_proto::frame::HEADER_LEN;
use crvm_proto::{ClientMsg, Kind, Op, ServerMsg};
use std::io::Write;
use std::time::{Duration, Instant};

/// Connections per attack kind, all open at once.
const PER_ATTACK: usize = 25;

/// How one attacking connection ended.
struct Outcome {
    close_code: Option<i32>,
    cut_after: Duration,
}

/// Reads until the end of the stream, answering pings; remembers a `close`.
fn until_cut(c: &mut Client, started: Instant) -> Outcome {
    let mut close_code = None;
    while let Some(f) = c.frame() {
        match f.kind {
            Kind::Control => {
                let (json, _) = f.control().unwrap();
                if let Ok(ServerMsg::Close { code, .. }) = serde_json::from_slice(json) {
                    close_code = Some(code);
                }
            }
            Kind::Ping => c.send_kind(Kind::Pong),
            _ => {}
        }
    }
    Outcome {
        close_code,
        cut_after: started.elapsed(),
    }
}

type Attack = fn(&Server, usize) -> Client;

fn never_hello(s: &Server, _: usize) -> Client {
    s.connect()
}

fn slow_drip(s: &Server, _: usize) -> Client {
    let mut c = s.connect();
    c.hello();
    let (_, frame) = c.codec.request(Op::GetUserStatus);
    c.raw(&frame[..10]);
    c
}

fn wrong_version(s: &Server, _: usize) -> Client {
    let mut c = s.connect();
    c.send(&ClientMsg::Hello {
        ver: crvm_proto::PROTOCOL_VERSION + 1,
        agent: "future".into(),
    });
    c
}

fn huge_length_prefix(s: &Server, _: usize) -> Client {
    let mut c = s.connect();
    c.hello();
    c.send_huge_length_prefix();
    c
}

fn malformed_json(s: &Server, _: usize) -> Client {
    let mut c = s.connect();
    c.hello();
    let bytes = raw_control(&mut c, b"{not json");
    c.raw(&bytes);
    c
}

fn unknown_message(s: &Server, _: usize) -> Client {
    let mut c = s.connect();
    c.hello();
    let bytes = raw_control(&mut c, br#"{"t":"launch_missiles","c":{"id":1}}"#);
    c.raw(&bytes);
    c
}

fn wrong_sequence(s: &Server, _: usize) -> Client {
    let mut c = s.connect();
    c.hello();
    // A numbered frame from the future (the next one expected is 2).
    let mut bytes = crvm_proto::frame::header_at(Kind::Control, 9, 0, 4).to_vec();
    bytes.extend_from_slice(&[0; 4]);
    c.raw(&bytes);
    c
}

fn garbage_first(s: &Server, i: usize) -> Client {
    let mut c = s.connect();
    let garbage: Vec<u8> = (0..64).map(|k| (k * 31 + i * 7) as u8).collect();
    c.raw(&garbage);
    c
}

fn request_before_login(s: &Server, _: usize) -> Client {
    let mut c = s.connect();
    c.hello();
    c.send_req(1, Op::GetMeetings);
    c
}

fn request_flood(s: &Server, i: usize) -> Client {
    let mut c = s.login("demo", &format!("flood{i}"));
    let mut bytes = Vec::new();
    for _ in 0..2000 {
        bytes.extend(c.codec.request(Op::GetUserStatus).1);
    }
    let mut writer = c.stream.try_clone().unwrap();
    // The server cuts the connection mid-write: that is the point.
    std::thread::spawn(move || {
        let _ = writer.write_all(&bytes);
    });
    c
}

fn still_served(watcher: &mut Client, actor: &mut Client, dnd: i32) -> Duration {
    let t = Instant::now();
    assert_eq!(actor.code(Op::SetDnd { dnd }), 0);
    loop {
        let push = watcher.push();
        if push.user_id == "other" {
            assert_eq!(push, st("other", 1, dnd));
            return t.elapsed();
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[test]
#[ignore = "prints figures; run by .ci/run with --nocapture"]
fn attack_census() {
    let dir = TmpDir::new();
    let s = Server::start(
        &dir,
        &config("hello_timeout_ms = 500\nframe_timeout_ms = 500\nmax_requests_per_s = 200"),
    );
    let mut good = s.login("demo", "good");
    let mut other = s.login("demo", "other");
    assert_eq!(good.code(Op::StartStatusNotify), 0);
    let idle_ms = ms(still_served(&mut good, &mut other, 1));

    let attacks: [(&str, Attack, i32); 10] = [
        ("never says hello", never_hello, 6),
        ("slow drip (frame never ends)", slow_drip, 6),
        ("wrong protocol version", wrong_version, 4),
        ("4 GiB length prefix", huge_length_prefix, 6),
        ("malformed JSON", malformed_json, 6),
        ("unknown message type", unknown_message, 6),
        ("wrong sequence number", wrong_sequence, 6),
        ("garbage instead of hello", garbage_first, 6),
        ("request before login", request_before_login, 12),
        ("request flood (2000 at once)", request_flood, 6),
    ];
    println!();
    println!(
        "attack census: {PER_ATTACK} connections of each kind at once; a well-behaved watcher \
         sees a push in {idle_ms:.2} ms when idle;\n\
         p50 cut ms counts from the first of the round's connects"
    );
    println!(
        "{:<30} {:>6} {:>12} {:>10} {:>14} {:>14}",
        "attack", "conns", "cut (close)", "expected", "p50 cut ms", "watcher ms"
    );
    for (round, (name, attack, expected)) in attacks.into_iter().enumerate() {
        let started = Instant::now();
        let mut clients: Vec<Client> = (0..PER_ATTACK).map(|i| attack(&s, i)).collect();
        // The watcher is served while the attackers are connected.
        let watcher = still_served(&mut good, &mut other, 10 + round as i32);
        let mut outcomes: Vec<Outcome> =
            clients.iter_mut().map(|c| until_cut(c, started)).collect();
        outcomes.sort_by_key(|o| o.cut_after);
        let with_code = outcomes
            .iter()
            .filter(|o| o.close_code == Some(expected))
            .count();
        let p50 = outcomes[outcomes.len() / 2].cut_after;
        println!(
            "{:<30} {:>6} {:>12} {:>10} {:>14.1} {:>14.2}",
            name,
            PER_ATTACK,
            with_code,
            expected,
            ms(p50),
            ms(watcher)
        );
        // Every connection was cut (until_cut returned) and each got the promised code.
        assert_eq!(
            with_code, PER_ATTACK,
            "{name}: not every connection got close {expected}"
        );
    }

    // Guessing secrets: wrong secrets from one source until the limiter answers instead.
    let before = s.log_text().matches("too many failed logins").count();
    let tries = 80;
    for i in 0..tries {
        let mut c = s.connect();
        c.hello();
        match c.login("demo", "wrong", &format!("guess{i}"), "") {
            ServerMsg::Res { result, .. } => assert_eq!(result, crvm_proto::Outcome::Err(7)),
            other => panic!("{other:?}"),
        }
    }
    let limited = s.log_text().matches("too many failed logins").count() - before;
    println!(
        "{:<30} {:>6} {:>12} {:>10}   (login_failures_per_source = 50 a minute)",
        "wrong secrets, one source", tries, limited, 7
    );
    assert_eq!(
        limited,
        tries - 50,
        "the limiter took over after 50 failures"
    );
    // The well-behaved pair, logged in before, is still served.
    still_served(&mut good, &mut other, 99);
}

/// A WebSocket attack: what one hostile browser (or bot) does to the `ws_listen` listener.
#[derive(Clone, Copy)]
enum WsAttack {
    /// Connects and never sends the HTTP upgrade.
    NoHandshake,
    /// Sends half an upgrade request and stops.
    HandshakeDrip,
    /// A page whose origin no tenant allows.
    ForeignPage,
    /// Completes the handshake, then never says hello.
    NeverHello,
    /// Text messages instead of binary frames.
    Text,
    /// Two frames in one message.
    TwoFrames,
    /// A message larger than the largest frame.
    Oversized,
    /// A flood of requests after login.
    Flood(usize),
}

/// How a WebSocket attack ended: the HTTP status of a refused handshake, the WebSocket close
/// code, or the protocol's `close` code, whichever the attack meets; `None` for a plain cut.
async fn ws_attack(ws: std::net::SocketAddr, attack: WsAttack) -> Option<i32> {
    use common::ws::{ours, request};
    use crvm_proto::PROTOCOL_VERSION;
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::{Error as WsError, Message};

    let mut tcp = tokio::net::TcpStream::connect(ws).await.unwrap();
    match attack {
        WsAttack::NoHandshake | WsAttack::HandshakeDrip => {
            if matches!(attack, WsAttack::HandshakeDrip) {
                tcp.write_all(b"GET /crvm HTTP/1.1\r\nHost: x\r\nUpgrade: web")
                    .await
                    .unwrap();
            }
            let mut sink = Vec::new();
            let _ = tcp.read_to_end(&mut sink).await;
            return None;
        }
        _ => {}
    }
    let origin = matches!(attack, WsAttack::ForeignPage).then_some("https://evil.example");
    let req = request(ws, "/crvm", Some(&ours()), origin);
    let socket = match tokio_tungstenite::client_async(req, tcp).await {
        Ok((s, _)) => s,
        Err(WsError::Http(resp)) => return Some(i32::from(resp.status().as_u16())),
        Err(e) => panic!("handshake: {e}"),
    };
    let mut codec = crvm_proto::raw::Codec::new();
    let hello = codec.msg(
        &ClientMsg::Hello {
            ver: PROTOCOL_VERSION,
            agent: "attack".into(),
        },
        b"",
    );
    let mut sends: Vec<Message> = Vec::new();
    match attack {
        WsAttack::Text => sends.push(Message::Text("{\"t\":\"hello\"}".into())),
        WsAttack::TwoFrames => {
            sends.push(Message::Binary([&hello[..], &hello[..]].concat().into()))
        }
        WsAttack::Oversized => {
            let mut big = vec![0u8; 2 * crvm_proto::frame::MAX_PAYLOAD_TO_SERVER as usize];
            let len = (big.len() - HEADER_LEN) as u32;
            big[..4].copy_from_slice(&len.to_be_bytes());
            sends.push(Message::Binary(big.into()));
        }
        WsAttack::Flood(i) => {
            sends.push(Message::Binary(hello.into()));
            let login =
                crvm_proto::raw::login_op("demo", "demo-secret", &format!("wsflood{i}"), "");
            sends.push(Message::Binary(codec.request(login).1.into()));
            for _ in 0..2000 {
                sends.push(Message::Binary(codec.request(Op::GetUserStatus).1.into()));
            }
        }
        _ => {}
    }
    // Sent while reading: the server may close before the last of a flood is written.
    let (mut tx, mut rx) = socket.split();
    tokio::spawn(async move {
        for m in sends {
            if tx.feed(m).await.is_err() {
                return;
            }
        }
        let _ = tx.flush().await;
    });
    let mut code = None;
    while let Some(Ok(m)) = rx.next().await {
        match m {
            Message::Binary(b) => {
                codec.feed(&b);
                while let Ok(Some(f)) = codec.next_frame() {
                    if f.kind != Kind::Control {
                        continue;
                    }
                    let (json, _) = f.control().unwrap();
                    if let Ok(ServerMsg::Close { code: c, .. }) = serde_json::from_slice(json) {
                        code = Some(c);
                    }
                }
            }
            Message::Close(Some(f)) => return code.or(Some(i32::from(u16::from(f.code)))),
            Message::Close(None) => return code,
            _ => {}
        }
    }
    code
}

#[test]
#[ignore = "prints figures; run by .ci/run with --nocapture"]
fn websocket_attack_census() {
    let dir = TmpDir::new();
    let (s, ws) = common::ws::start_with(
        &dir,
        "hello_timeout_ms = 500\nframe_timeout_ms = 500\nmax_requests_per_s = 200",
    );
    let mut good = s.login("demo", "good");
    let mut other = s.login("demo", "other");
    assert_eq!(good.code(Op::StartStatusNotify), 0);
    let attacks: [(&str, WsAttack, Option<i32>); 8] = [
        ("ws: no upgrade request", WsAttack::NoHandshake, None),
        ("ws: upgrade request dripped", WsAttack::HandshakeDrip, None),
        (
            "ws: page no tenant allows",
            WsAttack::ForeignPage,
            Some(403),
        ),
        ("ws: never says hello", WsAttack::NeverHello, Some(6)),
        ("ws: text messages", WsAttack::Text, Some(1002)),
        (
            "ws: two frames per message",
            WsAttack::TwoFrames,
            Some(1002),
        ),
        (
            "ws: message over the limit",
            WsAttack::Oversized,
            Some(1009),
        ),
        ("ws: request flood (2000)", WsAttack::Flood(0), Some(6)),
    ];
    println!();
    println!(
        "websocket attack census: {PER_ATTACK} connections of each kind at once (expected: HTTP \
         status, WebSocket close code, protocol close code, or - for a cut)"
    );
    println!(
        "{:<30} {:>6} {:>12} {:>10} {:>14} {:>14}",
        "attack", "conns", "as expected", "expected", "p50 cut ms", "watcher ms"
    );
    for (round, (name, attack, expected)) in attacks.into_iter().enumerate() {
        let started = Instant::now();
        let attackers = std::thread::spawn(move || {
            common::ws::runtime().block_on(async move {
                let mut set = tokio::task::JoinSet::new();
                for i in 0..PER_ATTACK {
                    let a = match attack {
                        WsAttack::Flood(_) => WsAttack::Flood(i),
                        a => a,
                    };
                    set.spawn(async move { (ws_attack(ws, a).await, started.elapsed()) });
                }
                let mut out = Vec::new();
                while let Some(r) = set.join_next().await {
                    out.push(r.unwrap());
                }
                out
            })
        });
        let watcher = still_served(&mut good, &mut other, 10 + round as i32);
        let mut outcomes = attackers.join().unwrap();
        outcomes.sort_by_key(|o| o.1);
        let as_expected = outcomes.iter().filter(|o| o.0 == expected).count();
        let p50 = outcomes[outcomes.len() / 2].1;
        let shown = expected.map_or("-".to_owned(), |c| c.to_string());
        println!(
            "{:<30} {:>6} {:>12} {:>10} {:>14.1} {:>14.2}",
            name,
            PER_ATTACK,
            as_expected,
            shown,
            ms(p50),
            ms(watcher)
        );
        assert_eq!(
            as_expected,
            PER_ATTACK,
            "{name}: {:?}",
            outcomes.iter().map(|o| o.0).collect::<Vec<_>>()
        );
    }
    still_served(&mut good, &mut other, 99);
}
