//! The WebSocket listener (`ws_listen`): who the handshake admits (path, subprotocol, the
//! page's origin), one frame per binary message, a browser's session as a peer of TCP clients,
//! and resumption across transports.
//!
//! A browser is played by `common::ws::Bridge`.

mod common;

use common::ws::*;
use common::*;
use crvm_proto::raw::RawClient;
use crvm_proto::{ClientMsg, Op, Outcome, ServerMsg, PROTOCOL_VERSION};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

#[test]
fn the_handshake_admits_the_path_the_subprotocol_and_allowed_pages_only() {
    let dir = TmpDir::new();
    let (_s, ws) = start(&dir);
    let ours = ours();
    // A non-browser client (no Origin) and a page the demo tenant allows.
    assert_eq!(handshake_status(ws, "/crvm", Some(&ours), None), 101);
    assert_eq!(
        handshake_status(ws, "/crvm", Some(&ours), Some(ORIGIN)),
        101
    );
    // A page no tenant allows is refused before any login.
    assert_eq!(
        handshake_status(ws, "/crvm", Some(&ours), Some("https://evil.example")),
        403
    );
    // No subprotocol, or none of ours.
    assert_eq!(handshake_status(ws, "/crvm", None, None), 400);
    assert_eq!(handshake_status(ws, "/crvm", Some("chat"), None), 400);
    // Another path.
    assert_eq!(handshake_status(ws, "/", Some(&ours), None), 404);
}

#[test]
fn another_protocol_version_is_answered_with_4_through_hello() {
    let dir = TmpDir::new();
    let (_s, ws) = start(&dir);
    assert_eq!(handshake_status(ws, "/crvm", Some("crvm.1"), None), 101);
    let old = runtime().block_on(async {
        let tcp = tokio::net::TcpStream::connect(ws).await.unwrap();
        let (mut socket, _) =
            tokio_tungstenite::client_async(request(ws, "/crvm", Some("crvm.1"), None), tcp)
                .await
                .unwrap();
        let mut codec = crvm_proto::raw::Codec::new();
        let hello = codec.msg(
            &ClientMsg::Hello {
                ver: 1,
                agent: "old".into(),
            },
            b"",
        );
        socket.send(Message::Binary(hello.into())).await.unwrap();
        match socket.next().await {
            Some(Ok(Message::Binary(b))) => {
                codec.feed(&b);
                codec.next_frame().unwrap().unwrap()
            }
            other => panic!("{other:?}"),
        }
    });
    let (json, _) = old.control().unwrap();
    let msg: ServerMsg = serde_json::from_slice(json).unwrap();
    assert!(matches!(msg, ServerMsg::Close { code: 4, .. }), "{msg:?}");
}

#[test]
fn a_browser_and_a_tcp_client_are_peers() {
    let dir = TmpDir::new();
    let (s, ws) = start(&dir);
    let browser = Bridge::start(ws, Some(ORIGIN));
    let mut web = logged_in(&browser, "web-1");
    let mut app = s.login("demo", "app-1");
    // A cmd each way.
    cmd((&mut app, "app-1"), (&mut web, "web-1"), b"to the browser");
    cmd((&mut web, "web-1"), (&mut app, "app-1"), b"to the app");
    // The app calls the browser, which accepts.
    call_accepted(&mut app, (&mut web, "web-1"));
}

#[test]
fn a_page_is_held_to_its_tenant_s_allowed_origins() {
    let dir = TmpDir::new();
    let (s, ws) = start(&dir);
    let browser = Bridge::start(ws, Some(ORIGIN));
    // acme allows no page: its login is refused like a wrong secret, and the log says why.
    let mut web = browser.connect();
    web.hello();
    assert!(matches!(
        web.login("acme", "acme-secret", "web-1", ""),
        ServerMsg::Res {
            result: Outcome::Err(7),
            ..
        }
    ));
    assert!(s.log_says("does not allow pages from"), "{}", s.log_text());
    // The same user without a page (a TCP client) is welcome.
    let _app = s.login("acme", "web-1");
}

#[test]
fn a_message_must_be_exactly_one_frame() {
    let dir = TmpDir::new();
    let (s, ws) = start(&dir);
    for bad in ["text", "two frames", "half a frame"] {
        let closed = runtime().block_on(async {
            let tcp = tokio::net::TcpStream::connect(ws).await.unwrap();
            let (mut socket, _) =
                tokio_tungstenite::client_async(request(ws, "/crvm", Some(&ours()), None), tcp)
                    .await
                    .unwrap();
            let mut codec = crvm_proto::raw::Codec::new();
            let hello = codec.msg(
                &ClientMsg::Hello {
                    ver: PROTOCOL_VERSION,
                    agent: "t".into(),
                },
                b"",
            );
            let msg = match bad {
                "text" => Message::Text("{\"t\":\"hello\"}".into()),
                "two frames" => {
                    let mut two = hello.clone();
                    two.extend_from_slice(&hello);
                    Message::Binary(two.into())
                }
                _ => Message::Binary(hello[..hello.len() - 1].to_vec().into()),
            };
            socket.send(msg).await.unwrap();
            loop {
                match socket.next().await {
                    Some(Ok(Message::Close(Some(f)))) => return Some(u16::from(f.code)),
                    Some(Ok(_)) => continue,
                    _ => return None,
                }
            }
        });
        assert_eq!(closed, Some(1002), "{bad}");
    }
    assert!(
        s.log_says("a binary message must carry exactly one frame"),
        "{}",
        s.log_text()
    );
    // The server still serves.
    let _ok = s.login("demo", "after");
}

#[test]
fn a_session_resumes_over_either_transport() {
    let dir = TmpDir::new();
    let (s, ws) = start(&dir);
    let browser = Bridge::start(ws, Some(ORIGIN));
    let mut web = browser.connect();
    let (session, secret) = login_resumable(&mut web, "web-1");
    // The link drops; a cmd for the browser waits in its session.
    drop(web);
    let mut app = s.login("demo", "app-1");
    app.send_attached(
        &ClientMsg::Cmd {
            n: 1,
            to: "web-1".into(),
        },
        b"while away",
    );
    // Resumed over TCP: the cmd is delivered there...
    let mut tcp = s.connect();
    tcp.hello();
    tcp.send(&ClientMsg::Resume {
        app_id: "demo".into(),
        session: session.clone(),
        secret,
        last: 0,
    });
    let ServerMsg::Resumed { secret, .. } = tcp.msg() else {
        panic!("resumed over TCP: {}", s.log_text())
    };
    until_cmd(&mut tcp, b"while away");
    // (Speaking after `resumed` makes its new secret the one in force, and acknowledges what
    // it received.)
    tcp.send_kind(crvm_proto::Kind::Ping);
    while tcp
        .frame()
        .is_some_and(|f| f.kind != crvm_proto::Kind::Pong)
    {}
    let last = tcp.codec.last_seq();
    drop(tcp);
    // ...and back over WebSocket, with the secret of the last resume.
    let mut web = browser.connect();
    web.hello();
    web.send(&ClientMsg::Resume {
        app_id: "demo".into(),
        session,
        secret,
        last,
    });
    web.codec.received_up_to(last);
    let answer = web.frame().map(|f| f.control().map(|(j, _)| j.to_vec()));
    assert!(
        matches!(&answer, Some(Ok(j)) if j.starts_with(b"{\"t\":\"resumed\"")),
        "resumed over WebSocket: {:?}\n{}",
        answer.map(|a| a.map(|j| String::from_utf8_lossy(&j).into_owned())),
        s.log_text()
    );
    app.send_attached(
        &ClientMsg::Cmd {
            n: 2,
            to: "web-1".into(),
        },
        b"back",
    );
    until_cmd(&mut web, b"back");
}

/// Reads messages (the session's replayed tail among them) until a cmd carrying `data`.
fn until_cmd(c: &mut RawClient, data: &[u8]) {
    loop {
        if let (ServerMsg::CmdIn { .. }, got) = c.msg_attached() {
            if got == data {
                return;
            }
        }
    }
}

/// `from` sends `data` to `to` as cmd 1, which `to` receives and acknowledges; `from` hears
/// it was delivered.
fn cmd(from: (&mut RawClient, &str), to: (&mut RawClient, &str), data: &[u8]) {
    let ((from, from_id), (to, to_id)) = (from, to);
    from.send_attached(
        &ClientMsg::Cmd {
            n: 1,
            to: to_id.into(),
        },
        data,
    );
    let (n, sender, got) = to.cmd_in();
    assert_eq!((sender.as_str(), got.as_slice()), (from_id, data));
    to.send(&ClientMsg::CmdAck { upto: n });
    assert!(matches!(from.reply(), ServerMsg::CmdDone { .. }));
}

/// In a cluster a WebSocket session is a session like any other: a browser on one node and an
/// app on another exchange cmds and a call.
#[test]
fn a_browser_on_one_node_and_an_app_on_another_are_peers() {
    let mut c = crvm_testkit::cluster::Cluster::start(2, 5000, "ws_listen = \"127.0.0.1:0\"");
    let ws = websocket_addr(&mut c.nodes[0]);
    let browser = Bridge::start(ws, None);
    let mut web = logged_in(&browser, "web-1");
    let mut app = c.node(1).login("demo", "app-1");
    cmd((&mut app, "app-1"), (&mut web, "web-1"), b"across nodes");
    cmd((&mut web, "web-1"), (&mut app, "app-1"), b"back");
    call_accepted(&mut web, (&mut app, "app-1"));
}

/// A browser through `bridge`, logged in as `user` of tenant `demo`.
fn logged_in(bridge: &Bridge, user: &str) -> RawClient {
    let mut web = bridge.connect();
    web.hello();
    assert!(matches!(
        web.login("demo", "demo-secret", user, ""),
        ServerMsg::Res {
            result: Outcome::Login { .. },
            ..
        }
    ));
    web
}

/// `caller` calls `callee` (call `c1`), who is rung and accepts; `caller` hears it.
fn call_accepted(caller: &mut RawClient, callee: (&mut RawClient, &str)) {
    let (callee, callee_id) = callee;
    let call = Op::Call {
        call_id: "c1".into(),
        callee: callee_id.into(),
        meet_obj: String::new(),
        ext: String::new(),
    };
    assert_eq!(caller.code(call), 0);
    assert!(matches!(callee.msg(), ServerMsg::CallIn { .. }));
    let accept = Op::AcceptCall {
        call_id: "c1".into(),
        meet_obj: String::new(),
        ext: String::new(),
    };
    assert_eq!(callee.code(accept), 0);
    assert!(matches!(caller.msg(), ServerMsg::CallAccepted { .. }));
}
