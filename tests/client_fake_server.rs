//! The library's state machine against a scripted fake server: the paths a real server cannot
//! be made to take on demand (version refusal, silence, drops with requests in flight, late
//! replies). Each test waits on events with a generous bound; nothing sleeps to synchronise.

use crossbeam_channel::{Receiver, Sender};
use crvm::core::{Client, Event, LoginParams};
use crvm_proto::error::*;
use crvm_proto::frame::{Decoder, Encoder, Kind, MAX_PAYLOAD_TO_SERVER};
use crvm_proto::msg::{to_json, ClientMsg, ServerMsg};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

/// The server side of one accepted connection.
struct Peer {
    sock: TcpStream,
    dec: Decoder,
    enc: Encoder,
}

impl Peer {
    fn accept(l: &TcpListener) -> Peer {
        let (sock, _) = l.accept().unwrap();
        sock.set_read_timeout(Some(WAIT)).unwrap();
        Peer {
            sock,
            dec: Decoder::new(MAX_PAYLOAD_TO_SERVER),
            enc: Encoder::new(),
        }
    }

    /// Next control message from the client (heartbeats are skipped).
    fn recv(&mut self) -> ClientMsg {
        loop {
            if let Some(f) = self.dec.next_frame().unwrap() {
                if f.kind == Kind::Control {
                    return serde_json::from_slice(f.control().unwrap().0).unwrap();
                }
                continue;
            }
            let mut buf = [0u8; 4096];
            let n = self.sock.read(&mut buf).unwrap();
            assert!(n > 0, "client closed");
            self.dec.feed(&buf[..n]);
        }
    }

    fn send(&mut self, m: &ServerMsg) {
        let f = self.enc.control(self.dec.last_seq(), &to_json(m), &[]);
        self.sock.write_all(&f).unwrap();
    }

    /// Reads Hello and Login and answers both; returns the login request ID.
    fn welcome_and_login(&mut self, heartbeat_ms: u64) -> u64 {
        assert!(matches!(self.recv(), ClientMsg::Hello { ver: 1, .. }));
        let ClientMsg::Login { id, user_id, .. } = self.recv() else {
            panic!("expected login")
        };
        self.send(&ServerMsg::Welcome {
            ver: 1,
            heartbeat_ms,
            max_buffer_bytes: 1 << 20,
            max_file_bytes: 1 << 30,
        });
        self.send(&ServerMsg::LoginOk { re: id, user_id });
        id
    }
}

fn client(addr: &str, opts: &[(&str, &str)]) -> (Client, Receiver<Event>) {
    let (tx, rx): (Sender<Event>, Receiver<Event>) = crossbeam_channel::unbounded();
    let c = Client::new(
        addr,
        Box::new(move |e: &Event| {
            let _ = tx.send(e.clone());
        }),
    )
    .unwrap();
    for (k, v) in opts {
        c.set_option(k, v).unwrap();
    }
    (c, rx)
}

fn login(c: &Client, user: &str) {
    let p = LoginParams {
        auth_acnt: "demo",
        auth_pswd: "demo-secret",
        priv_acnt: user,
        cookie: "ck",
        ..Default::default()
    };
    c.login(&p).unwrap();
}

fn next(rx: &Receiver<Event>) -> Event {
    rx.recv_timeout(WAIT).expect("event expected")
}

fn listener() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    (l, addr)
}

#[test]
fn version_refusal_is_login_fail_4() {
    let (l, addr) = listener();
    let (c, rx) = client(&addr, &[]);
    login(&c, "alice");
    let mut p = Peer::accept(&l);
    p.recv();
    p.send(&ServerMsg::Close {
        code: CRVIDEOSDK_MISMATCHCLIENTVER,
        reason: "version".into(),
    });
    assert_eq!(
        next(&rx),
        Event::LoginFail {
            code: 4,
            cookie: "ck".into()
        }
    );
    // Logged out again: a new login is accepted.
    login(&c, "alice");
}

#[test]
fn drop_with_requests_in_flight_answers_each_then_line_off() {
    let (l, addr) = listener();
    let (c, rx) = client(&addr, &[]);
    login(&c, "alice");
    let mut p = Peer::accept(&l);
    p.welcome_and_login(10_000);
    assert!(matches!(next(&rx), Event::LoginSuccess { .. }));
    c.get_meetings("m").unwrap();
    c.set_dnd_status(1, "d").unwrap();
    assert!(matches!(p.recv(), ClientMsg::GetMeetings { .. }));
    assert!(matches!(p.recv(), ClientMsg::SetDnd { .. }));
    drop(p);
    assert_eq!(
        next(&rx),
        Event::GetMeetingsFail {
            code: 207,
            cookie: "m".into()
        }
    );
    assert_eq!(
        next(&rx),
        Event::SetDndStatusFail {
            code: 207,
            cookie: "d".into()
        }
    );
    assert_eq!(next(&rx), Event::LineOff { code: 207 });
    assert_eq!(c.get_meetings(""), Err(CRVIDEOSDK_NOT_LOGIN));
}

#[test]
fn silent_server_is_detected_by_heartbeat() {
    let (l, addr) = listener();
    let (c, rx) = client(&addr, &[]);
    login(&c, "alice");
    let mut p = Peer::accept(&l);
    // 100 ms heartbeats: the client declares the link dead after 300 ms of silence.
    p.welcome_and_login(100);
    assert!(matches!(next(&rx), Event::LoginSuccess { .. }));
    assert_eq!(next(&rx), Event::LineOff { code: 207 });
    drop(p);
}

#[test]
fn unanswered_request_times_out_once_and_late_reply_is_ignored() {
    let (l, addr) = listener();
    let (c, rx) = client(&addr, &[("request_timeout_ms", "200")]);
    login(&c, "alice");
    let mut p = Peer::accept(&l);
    p.welcome_and_login(10_000);
    assert!(matches!(next(&rx), Event::LoginSuccess { .. }));
    c.get_meetings("late").unwrap();
    let ClientMsg::GetMeetings { id } = p.recv() else {
        panic!()
    };
    assert_eq!(
        next(&rx),
        Event::GetMeetingsFail {
            code: 202,
            cookie: "late".into()
        }
    );
    p.send(&ServerMsg::Meetings {
        re: id,
        list: vec![],
    });
    c.get_user_status("after").unwrap();
    let ClientMsg::GetUserStatus { id } = p.recv() else {
        panic!()
    };
    p.send(&ServerMsg::Statuses {
        re: id,
        list: vec![],
    });
    assert_eq!(
        next(&rx),
        Event::GetUserStatusSuccess {
            users_status: "[]".into(),
            cookie: "after".into()
        }
    );
}

#[test]
fn login_without_answer_is_202_and_refused_connect_is_203() {
    let (l, addr) = listener();
    let (c, rx) = client(&addr, &[("request_timeout_ms", "200")]);
    login(&c, "alice");
    let _p = Peer::accept(&l);
    assert_eq!(
        next(&rx),
        Event::LoginFail {
            code: 202,
            cookie: "ck".into()
        }
    );
    drop(l);
    login(&c, "alice");
    assert_eq!(
        next(&rx),
        Event::LoginFail {
            code: 203,
            cookie: "ck".into()
        }
    );
}

#[test]
fn kick_and_shutdown_codes_reach_line_off() {
    for code in [
        CRVIDEOSDK_USER_BEEN_KICKOUT,
        CRVIDEOSDK_FORCEDCLOSECONNECTION,
    ] {
        let (l, addr) = listener();
        let (c, rx) = client(&addr, &[]);
        login(&c, "alice");
        let mut p = Peer::accept(&l);
        p.welcome_and_login(10_000);
        assert!(matches!(next(&rx), Event::LoginSuccess { .. }));
        p.send(&ServerMsg::Close {
            code,
            reason: String::new(),
        });
        assert_eq!(next(&rx), Event::LineOff { code });
    }
}

#[test]
fn presence_pushes_carry_the_subscription_cookie_in_order() {
    let (l, addr) = listener();
    let (c, rx) = client(&addr, &[]);
    login(&c, "alice");
    let mut p = Peer::accept(&l);
    p.welcome_and_login(10_000);
    assert!(matches!(next(&rx), Event::LoginSuccess { .. }));
    c.start_user_status_notify("sub").unwrap();
    let ClientMsg::StartStatusNotify { id } = p.recv() else {
        panic!()
    };
    // A push that overtakes the reply still carries the cookie.
    for (i, dnd) in [0, 1, 2].into_iter().enumerate() {
        p.send(&ServerMsg::UserStatus {
            status: crvm_proto::UserStatus {
                user_id: format!("u{i}"),
                user_status: 1,
                dnd_type: dnd,
            },
        });
    }
    p.send(&ServerMsg::Reply { re: id, code: 0 });
    for i in 0..3 {
        assert_eq!(
            next(&rx),
            Event::NotifyUserStatus {
                user_status: format!(r#"{{"userID":"u{i}","userStatus":1,"DNDType":{i}}}"#),
                cookie: "sub".into()
            }
        );
    }
    assert_eq!(
        next(&rx),
        Event::StartUserStatusNotifyRslt {
            code: 0,
            cookie: "sub".into()
        }
    );
}

#[test]
fn logout_waits_for_earlier_answers_and_sends_no_line_off() {
    let (l, addr) = listener();
    let (c, rx) = client(&addr, &[]);
    login(&c, "alice");
    let mut p = Peer::accept(&l);
    p.welcome_and_login(10_000);
    assert!(matches!(next(&rx), Event::LoginSuccess { .. }));
    c.set_dnd_status(3, "x").unwrap();
    c.logout().unwrap();
    assert_eq!(c.get_meetings(""), Err(CRVIDEOSDK_NOT_LOGIN));
    let ClientMsg::SetDnd { id, .. } = p.recv() else {
        panic!()
    };
    let ClientMsg::Logout { id: lid } = p.recv() else {
        panic!()
    };
    p.send(&ServerMsg::Reply { re: id, code: 0 });
    p.send(&ServerMsg::Reply { re: lid, code: 0 });
    assert_eq!(next(&rx), Event::SetDndStatusSuccess { cookie: "x".into() });
    // A fresh login goes out on a new connection; nothing else was emitted in between.
    login(&c, "alice");
    let mut p2 = Peer::accept(&l);
    p2.welcome_and_login(10_000);
    assert!(matches!(next(&rx), Event::LoginSuccess { .. }));
}

#[test]
fn manual_dispatch_runs_events_only_inside_poll() {
    let (l, addr) = listener();
    let (c, rx) = client(&addr, &[("dispatch", "manual")]);
    assert_eq!(
        c.set_option("dispatch", "bogus"),
        Err(CRVIDEOSDK_MEETPARAM_ERR)
    );
    login(&c, "alice");
    assert_eq!(c.set_option("dispatch", "thread"), Err(9));
    let mut p = Peer::accept(&l);
    p.welcome_and_login(10_000);
    // The login result is queued, not delivered, until someone polls.
    assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
    let mut ran = 0;
    while ran == 0 {
        ran = c.poll(WAIT).unwrap();
    }
    assert_eq!(ran, 1);
    assert!(matches!(rx.try_recv(), Ok(Event::LoginSuccess { .. })));
    assert_eq!(c.poll(Duration::ZERO), Ok(0));
}

#[test]
fn call_ids_events_and_the_hangup_a_lost_link_implies() {
    let (l, addr) = listener();
    let (c, rx) = client(&addr, &[]);
    assert_eq!(c.call("bob", "", "", ""), Err(CRVIDEOSDK_NOT_LOGIN));
    login(&c, "alice");
    let mut p = Peer::accept(&l);
    p.welcome_and_login(10_000);
    assert!(matches!(next(&rx), Event::LoginSuccess { .. }));
    assert_eq!(c.call("", "", "", ""), Err(CRVIDEOSDK_MEETPARAM_ERR));
    assert_eq!(c.call("bob", "[]", "", ""), Err(CRVIDEOSDK_MEETPARAM_ERR));
    assert_eq!(c.accept_call("", "", "", ""), Err(CRVIDEOSDK_MEETPARAM_ERR));
    assert_eq!(
        c.hungup_call(&"x".repeat(64), "", ""),
        Err(CRVIDEOSDK_MEETPARAM_ERR)
    );
    let meet = r#"{"ID":1}"#;
    let id1 = c.call("bob", meet, "hi", "ck1").unwrap();
    let id2 = c.call("carol", "", "", "ck2").unwrap();
    assert_ne!(id1, id2);
    let ClientMsg::Call {
        id: r1,
        call_id,
        callee,
        meet_obj,
        ext,
    } = p.recv()
    else {
        panic!()
    };
    assert_eq!(
        (&call_id, &callee[..], &meet_obj[..], &ext[..]),
        (&id1, "bob", meet, "hi")
    );
    let ClientMsg::Call { id: r2, .. } = p.recv() else {
        panic!()
    };
    p.send(&ServerMsg::Reply { re: r1, code: 0 });
    p.send(&ServerMsg::Reply { re: r2, code: 601 });
    p.send(&ServerMsg::CallAccepted {
        call_id: id1.clone(),
        ext: "yo".into(),
        meet_obj: meet.into(),
    });
    p.send(&ServerMsg::CallIn {
        call_id: "theirs".into(),
        caller: "dave".into(),
        meet_obj: String::new(),
        ext: "x".into(),
    });
    assert_eq!(
        next(&rx),
        Event::CallSuccess {
            call_id: id1.clone(),
            cookie: "ck1".into()
        }
    );
    assert_eq!(
        next(&rx),
        Event::CallFail {
            call_id: id2,
            code: 601,
            cookie: "ck2".into()
        }
    );
    assert_eq!(
        next(&rx),
        Event::NotifyCallAccepted {
            call_id: id1.clone(),
            usr_ext_dat: "yo".into(),
            meet_obj: meet.into()
        }
    );
    assert!(matches!(next(&rx), Event::NotifyCallIn { caller_id, .. } if caller_id == "dave"));
    // The link drops: both calls this side is in end with a hang-up, then line_off.
    drop(p);
    let mut ended = vec![next(&rx), next(&rx)];
    ended.sort_by_key(|e| format!("{e:?}"));
    let hung = |call_id: &str| Event::NotifyCallHungup {
        call_id: call_id.into(),
        usr_ext_dat: String::new(),
    };
    let mut want = vec![hung(&id1), hung("theirs")];
    want.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(ended, want);
    assert_eq!(next(&rx), Event::LineOff { code: 207 });
}
