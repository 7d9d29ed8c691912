//! The library's state machine against a scripted fake server: the paths a real server cannot
//! be made to take on demand (version refusal, silence, drops with requests in flight, late
//! replies). Each test waits on events with a generous bound; nothing sleeps to synchronise.

use crossbeam_channel::{Receiver, Sender};
use crvm::core::{Client, Event, LoginParams};
use crvm_proto::error::*;
use crvm_proto::msg::{xfer, ClientMsg, Op, ServerMsg};
use crvm_proto::Code;
use crvm_testkit::fake::FakePeer as Peer;
use std::io::Write;
use std::net::TcpListener;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

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

fn c(n: i32) -> Code {
    code(n)
}

/// A logged-in client and its fake server's side.
fn logged_in(opts: &[(&str, &str)]) -> (TcpListener, Client, Receiver<Event>, Peer) {
    let (l, addr) = listener();
    let (cl, rx) = client(&addr, opts);
    login(&cl, "alice");
    let mut p = Peer::accept(&l, WAIT);
    p.welcome_and_login(10_000);
    assert!(matches!(next(&rx), Event::Login { result: Ok(_), .. }));
    (l, cl, rx, p)
}

fn listener() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    (l, addr)
}

#[test]
fn version_refusal_is_login_fail_4() {
    let (l, addr) = listener();
    let (cl, rx) = client(&addr, &[]);
    login(&cl, "alice");
    let mut p = Peer::accept(&l, WAIT);
    p.recv();
    p.send(&ServerMsg::Close {
        code: CRVIDEOSDK_MISMATCHCLIENTVER,
        reason: "version".into(),
    });
    assert_eq!(
        next(&rx),
        Event::Login {
            result: Err(c(4)),
            cookie: "ck".into()
        }
    );
    // Logged out again: a new login is accepted.
    login(&cl, "alice");
}

#[test]
fn drop_with_requests_in_flight_answers_each_then_line_off() {
    let (_l, cl, rx, mut p) = logged_in(&[]);
    cl.get_meetings("m").unwrap();
    cl.set_dnd_status(1, "d").unwrap();
    assert!(matches!(p.req(), (_, Op::GetMeetings)));
    assert!(matches!(p.req(), (_, Op::SetDnd { .. })));
    drop(p);
    assert_eq!(
        next(&rx),
        Event::GetMeetings {
            result: Err(c(207)),
            cookie: "m".into()
        }
    );
    assert_eq!(
        next(&rx),
        Event::SetDndStatus {
            result: Err(c(207)),
            cookie: "d".into()
        }
    );
    assert_eq!(next(&rx), Event::LineOff { code: c(207) });
    assert_eq!(cl.get_meetings(""), Err(c(CRVIDEOSDK_NOT_LOGIN)));
}

#[test]
fn silent_server_is_detected_by_heartbeat() {
    let (l, addr) = listener();
    let (cl, rx) = client(&addr, &[]);
    login(&cl, "alice");
    let mut p = Peer::accept(&l, WAIT);
    // 100 ms heartbeats: the client declares the link dead after 300 ms of silence.
    p.welcome_and_login(100);
    assert!(matches!(next(&rx), Event::Login { result: Ok(_), .. }));
    assert_eq!(next(&rx), Event::LineOff { code: c(207) });
    drop(p);
}

#[test]
fn unanswered_request_times_out_once_and_late_reply_is_ignored() {
    let (_l, cl, rx, mut p) = logged_in(&[("request_timeout_ms", "200")]);
    cl.get_meetings("late").unwrap();
    let (id, Op::GetMeetings) = p.req() else {
        panic!()
    };
    assert_eq!(
        next(&rx),
        Event::GetMeetings {
            result: Err(c(202)),
            cookie: "late".into()
        }
    );
    p.send(&ServerMsg::Res {
        re: id,
        result: crvm_proto::Outcome::Meetings(vec![]),
    });
    cl.get_user_status("after").unwrap();
    let (id, Op::GetUserStatus) = p.req() else {
        panic!()
    };
    p.send(&ServerMsg::Res {
        re: id,
        result: crvm_proto::Outcome::Statuses(vec![]),
    });
    assert_eq!(
        next(&rx),
        Event::GetUserStatus {
            result: Ok(vec![]),
            cookie: "after".into()
        }
    );
}

#[test]
fn login_without_answer_is_202_and_refused_connect_is_203() {
    let (l, addr) = listener();
    let (cl, rx) = client(&addr, &[("request_timeout_ms", "200")]);
    login(&cl, "alice");
    let _p = Peer::accept(&l, WAIT);
    assert_eq!(
        next(&rx),
        Event::Login {
            result: Err(c(202)),
            cookie: "ck".into()
        }
    );
    drop(l);
    login(&cl, "alice");
    assert_eq!(
        next(&rx),
        Event::Login {
            result: Err(c(203)),
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
        let (_l, _cl, rx, mut p) = logged_in(&[]);
        p.send(&ServerMsg::Close {
            code,
            reason: String::new(),
        });
        assert_eq!(next(&rx), Event::LineOff { code: c(code) });
    }
}

#[test]
fn presence_pushes_carry_the_subscription_cookie_in_order() {
    let (_l, cl, rx, mut p) = logged_in(&[]);
    cl.start_user_status_notify("sub").unwrap();
    let (id, Op::StartStatusNotify) = p.req() else {
        panic!()
    };
    // A push that overtakes the reply still carries the cookie.
    let status = |i: i32| crvm_proto::UserStatus::new(format!("u{i}"), 1, i);
    for i in 0..3 {
        p.send(&ServerMsg::UserStatus(status(i)));
    }
    p.send(&ServerMsg::reply(id, 0));
    for i in 0..3 {
        assert_eq!(
            next(&rx),
            Event::NotifyUserStatus {
                status: status(i),
                cookie: "sub".into()
            }
        );
    }
    assert_eq!(
        next(&rx),
        Event::StartUserStatusNotify {
            result: Ok(()),
            cookie: "sub".into()
        }
    );
}

#[test]
fn a_reconnecting_mark_reaches_the_app_and_older_or_newer_status_shapes_parse() {
    let (_l, cl, rx, mut p) = logged_in(&[]);
    cl.start_user_status_notify("sub").unwrap();
    let (id, Op::StartStatusNotify) = p.req() else {
        panic!()
    };
    p.send(&ServerMsg::reply(id, 0));
    assert!(matches!(next(&rx), Event::StartUserStatusNotify { .. }));
    let held = crvm_proto::UserStatus {
        reconnecting: true,
        ..crvm_proto::UserStatus::new("al", 2, 0)
    };
    p.send(&ServerMsg::UserStatus(held.clone()));
    // A server of another version: the mark written as false, and a key this one does not know.
    let json = concat!(
        r#"{"t":"user_status","c":{"userID":"al","userStatus":1,"DNDType":0,"#,
        r#""reconnecting":false,"later":[1]}}"#
    );
    let frame = p.codec.control(json.as_bytes(), &[]);
    p.sock.write_all(&frame).unwrap();
    assert_eq!(
        next(&rx),
        Event::NotifyUserStatus {
            status: held,
            cookie: "sub".into()
        }
    );
    assert_eq!(
        next(&rx),
        Event::NotifyUserStatus {
            status: crvm_proto::UserStatus::new("al", 1, 0),
            cookie: "sub".into()
        }
    );
}

#[test]
fn logout_waits_for_earlier_answers_and_sends_no_line_off() {
    let (l, cl, rx, mut p) = logged_in(&[]);
    cl.set_dnd_status(3, "x").unwrap();
    cl.logout().unwrap();
    assert_eq!(cl.get_meetings(""), Err(c(CRVIDEOSDK_NOT_LOGIN)));
    let (id, Op::SetDnd { .. }) = p.req() else {
        panic!()
    };
    let (lid, Op::Logout) = p.req() else { panic!() };
    p.send(&ServerMsg::reply(id, 0));
    p.send(&ServerMsg::reply(lid, 0));
    assert_eq!(
        next(&rx),
        Event::SetDndStatus {
            result: Ok(()),
            cookie: "x".into()
        }
    );
    // A fresh login goes out on a new connection; nothing else was emitted in between.
    login(&cl, "alice");
    let mut p2 = Peer::accept(&l, WAIT);
    p2.welcome_and_login(10_000);
    assert!(matches!(next(&rx), Event::Login { result: Ok(_), .. }));
}

#[test]
fn manual_dispatch_runs_events_only_inside_poll() {
    let (l, addr) = listener();
    let (cl, rx) = client(&addr, &[("dispatch", "manual")]);
    assert_eq!(
        cl.set_option("dispatch", "bogus"),
        Err(c(CRVIDEOSDK_MEETPARAM_ERR))
    );
    login(&cl, "alice");
    assert_eq!(cl.set_option("dispatch", "thread"), Err(c(9)));
    let mut p = Peer::accept(&l, WAIT);
    p.welcome_and_login(10_000);
    // The login result is queued, not delivered, until someone polls.
    assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
    let mut ran = 0;
    while ran == 0 {
        ran = cl.poll(WAIT).unwrap();
    }
    assert_eq!(ran, 1);
    assert!(matches!(
        rx.try_recv(),
        Ok(Event::Login { result: Ok(_), .. })
    ));
    assert_eq!(cl.poll(Duration::ZERO), Ok(0));
}

#[test]
fn call_ids_events_and_the_hangup_a_lost_link_implies() {
    let (l, addr) = listener();
    let (cl, rx) = client(&addr, &[]);
    assert_eq!(cl.call("bob", "", "", ""), Err(c(CRVIDEOSDK_NOT_LOGIN)));
    login(&cl, "alice");
    let mut p = Peer::accept(&l, WAIT);
    p.welcome_and_login(10_000);
    assert!(matches!(next(&rx), Event::Login { result: Ok(_), .. }));
    let bad = Err(c(CRVIDEOSDK_MEETPARAM_ERR));
    assert_eq!(cl.call("", "", "", ""), bad);
    assert_eq!(cl.call("bob", "[]", "", ""), bad);
    assert_eq!(
        cl.accept_call("", "", "", ""),
        bad.clone().map(|_: String| ())
    );
    assert_eq!(
        cl.hungup_call(&"x".repeat(64), "", ""),
        bad.clone().map(|_: String| ())
    );
    let meet = r#"{"ID":1}"#;
    let id1 = cl.call("bob", meet, "hi", "ck1").unwrap();
    let id2 = cl.call("carol", "", "", "ck2").unwrap();
    assert_ne!(id1, id2);
    let (
        r1,
        Op::Call {
            call_id,
            callee,
            meet_obj,
            ext,
        },
    ) = p.req()
    else {
        panic!()
    };
    assert_eq!(
        (&call_id, &callee[..], &meet_obj[..], &ext[..]),
        (&id1, "bob", meet, "hi")
    );
    let (r2, Op::Call { .. }) = p.req() else {
        panic!()
    };
    p.send(&ServerMsg::reply(r1, 0));
    p.send(&ServerMsg::reply(r2, 601));
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
        Event::Call {
            call_id: id1.clone(),
            result: Ok(()),
            cookie: "ck1".into()
        }
    );
    assert_eq!(
        next(&rx),
        Event::Call {
            call_id: id2,
            result: Err(c(601)),
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
    assert_eq!(next(&rx), Event::LineOff { code: c(207) });
}

/// The cmd numbers the client sends, in order, and their bytes, up to `n` of them.
fn cmds(p: &mut Peer, n: usize) -> Vec<(u64, Vec<u8>)> {
    (0..n)
        .map(|_| match p.recv_attached() {
            (ClientMsg::Cmd { n, to }, data) => {
                assert_eq!(to, "bob");
                (n, data)
            }
            (other, _) => panic!("expected a cmd, got {other:?}"),
        })
        .collect()
}

#[test]
fn cmds_beyond_the_window_wait_in_order_and_each_gets_one_result() {
    let (_l, cl, rx, mut p) = logged_in(&[]);
    let total = xfer::CMD_WINDOW + 100;
    let tasks: Vec<String> = (0..total)
        .map(|i| cl.send_cmd("bob", format!("cmd {i}").as_bytes()).unwrap())
        .collect();
    // Only the window goes out until the server reports some done.
    let first = cmds(&mut p, xfer::CMD_WINDOW);
    for (i, (n, data)) in first.iter().enumerate() {
        assert_eq!(
            (*n, &data[..]),
            (i as u64 + 1, format!("cmd {i}").as_bytes())
        );
    }
    p.send(&ServerMsg::CmdDone {
        ns: (1..=50).collect(),
        code: 0,
    });
    // Fifty done: fifty more go, in order, and the fifty results come in order.
    let more = cmds(&mut p, 50);
    assert_eq!(more[0].0, xfer::CMD_WINDOW as u64 + 1);
    for task in &tasks[..50] {
        assert_eq!(
            next(&rx),
            Event::CmdSent {
                task_id: task.clone(),
                result: Ok(())
            }
        );
    }
    // A target that went away fails the rest; the still-queued ones end with the lost link.
    p.send(&ServerMsg::CmdDone {
        ns: (51..=60).collect(),
        code: 1102,
    });
    for task in &tasks[50..60] {
        assert_eq!(
            next(&rx),
            Event::CmdSent {
                task_id: task.clone(),
                result: Err(c(1102))
            }
        );
    }
    drop(p);
    for task in &tasks[60..] {
        assert_eq!(
            next(&rx),
            Event::CmdSent {
                task_id: task.clone(),
                result: Err(c(207))
            }
        );
    }
    assert_eq!(next(&rx), Event::LineOff { code: c(207) });
}

#[test]
fn received_cmds_are_acknowledged_once_delivered_and_out_of_order_is_a_protocol_error() {
    let (_l, _cl, rx, mut p) = logged_in(&[]);
    for n in 1..=3u64 {
        p.send_attached(
            &ServerMsg::CmdIn {
                n,
                from: "bob".into(),
            },
            &[n as u8],
        );
    }
    for n in 1..=3u8 {
        assert_eq!(
            next(&rx),
            Event::NotifyCmdData {
                from: "bob".into(),
                data: vec![n]
            }
        );
    }
    // Acknowledged cumulatively (possibly in several steps), up to the last one delivered.
    let mut upto = 0;
    while upto < 3 {
        match p.recv() {
            ClientMsg::CmdAck { upto: u } => {
                assert!(u > upto, "acknowledgements only grow");
                upto = u;
            }
            other => panic!("expected cmd_ack, got {other:?}"),
        }
    }
    assert_eq!(upto, 3);
    // A gap in the numbering is not something a server may do: the link is dropped.
    p.send_attached(
        &ServerMsg::CmdIn {
            n: 5,
            from: "bob".into(),
        },
        b"x",
    );
    assert_eq!(next(&rx), Event::LineOff { code: c(207) });
}

#[test]
fn max_pending_bytes_is_the_one_refusal_and_sends_nothing() {
    let (_l, cl, rx2, mut p) = logged_in(&[("max_pending_bytes", "1000")]);
    // Ten cmds of 100 bytes fill the 1000 bytes; the eleventh is refused at once.
    let accepted: Vec<String> = (0..10)
        .map(|_| cl.send_cmd("bob", [7; 100]).unwrap())
        .collect();
    assert_eq!(cl.send_cmd("bob", [7; 100]), Err(c(CRVIDEOSDK_SENDFAIL)));
    assert_eq!(
        cl.send_buffer("bob", vec![1; 10]),
        Err(c(CRVIDEOSDK_SENDFAIL))
    );
    let sent = cmds(&mut p, 10);
    // Once acknowledged, there is room again; the refused ones were never sent.
    p.send(&ServerMsg::CmdDone {
        ns: sent.iter().map(|(n, _)| *n).collect(),
        code: 0,
    });
    for task in accepted {
        assert_eq!(
            next(&rx2),
            Event::CmdSent {
                task_id: task,
                result: Ok(())
            }
        );
    }
    let t = cl.send_cmd("bob", b"again").unwrap();
    let (n, data) = cmds(&mut p, 1).remove(0);
    assert_eq!((n, &data[..]), (11, &b"again"[..]));
    p.send(&ServerMsg::CmdDone {
        ns: vec![11],
        code: 0,
    });
    assert_eq!(
        next(&rx2),
        Event::CmdSent {
            task_id: t,
            result: Ok(())
        }
    );
}
