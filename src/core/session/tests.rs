//! The session driven by hand: no socket, no thread, no clock — the time is whatever the test
//! says, the randomness a seeded generator, the log a list in memory.

use super::super::event::Event;
use super::super::events::LogSink;
use super::lifecycle::{backoff, RETRY_BASE, RETRY_MAX};
use super::*;
use crvm_proto::error::*;
use crvm_proto::frame::MAX_PAYLOAD_TO_SERVER;
use crvm_proto::msg::{to_json, xfer};
use crvm_proto::{
    Batch, ClientMsg, Encoder, Kind, Op, Outcome, ServerMsg, UserStatus, XferKind, PROTOCOL_VERSION,
};
use parking_lot::Mutex;
use std::path::{Path, PathBuf};

/// A seeded generator (splitmix64) and a log kept in memory.
struct TestEnv {
    state: u64,
    log: Arc<Mutex<Vec<String>>>,
}

impl TestEnv {
    fn new() -> TestEnv {
        TestEnv {
            state: 1,
            log: Arc::default(),
        }
    }
}

impl Env for TestEnv {
    fn random_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn open_log(&mut self, _path: &Path) -> Option<Box<dyn LogSink>> {
        Some(Box::new(MemLog(Arc::clone(&self.log))))
    }
}

struct MemLog(Arc<Mutex<Vec<String>>>);

impl LogSink for MemLog {
    fn line(&mut self, what: &str) {
        self.0.lock().push(what.to_owned());
    }
}

/// The bytes `batch` writes, in order.
fn flat(batch: &Batch) -> Vec<u8> {
    batch
        .slices(0)
        .iter()
        .flat_map(|s| s.iter().copied())
        .collect()
}

fn session(now: Instant) -> Session {
    Session::new(now, Box::new(TestEnv::new()))
}

/// The server's side of the link: decodes what the session transmits, encodes replies.
struct Server {
    enc: Encoder,
    dec: Decoder,
}

impl Server {
    fn new() -> Server {
        Server {
            enc: Encoder::new(),
            dec: Decoder::new(MAX_PAYLOAD_TO_SERVER),
        }
    }

    /// Everything the session has to send, as messages.
    fn take(&mut self, s: &mut Session, now: Instant) -> Vec<ClientMsg> {
        let mut wire = Batch::new();
        while s.transmit(&mut wire, now) {}
        self.dec.feed(&flat(&wire));
        let mut out = Vec::new();
        while let Some(f) = self.dec.next_frame().unwrap() {
            if f.kind == Kind::Control {
                out.push(serde_json::from_slice(f.control().unwrap().0).unwrap());
            }
        }
        out
    }

    fn send(&mut self, s: &mut Session, msg: &ServerMsg, now: Instant) {
        let bytes = if msg.is_handshake() {
            crvm_proto::frame::handshake_frame(&to_json(msg))
        } else {
            self.enc.control(self.dec.last_seq(), &to_json(msg), &[])
        };
        let room = s.read_buf();
        room[..bytes.len()].copy_from_slice(&bytes);
        s.received(bytes.len(), now);
    }
}

fn events(s: &mut Session) -> Vec<Event> {
    let mut out = Vec::new();
    s.take_events(&mut out, usize::MAX);
    s.delivered();
    out
}

fn login_op() -> Op {
    Op::Login {
        app_id: "demo".into(),
        secret: "s".into(),
        user_id: "alice".into(),
        nick: String::new(),
        token: String::new(),
        // What the session asks for with the default `reconnect=on`.
        resume: true,
    }
}

/// A session logged in as alice, and its server.
fn logged_in(t0: Instant) -> (Session, Server) {
    let mut s = session(t0);
    s.login(login_op(), "ck", t0).unwrap();
    let (gen, want) = s.want();
    assert_eq!(want, Want::Connect { tls: false });
    s.link_up(gen, t0);
    let mut srv = Server::new();
    let sent = srv.take(&mut s, t0);
    assert!(matches!(
        sent[0],
        ClientMsg::Hello {
            ver: PROTOCOL_VERSION,
            ..
        }
    ));
    let ClientMsg::Req { id, op } = &sent[1] else {
        panic!("{sent:?}")
    };
    assert_eq!(*op, login_op());
    let welcome = ServerMsg::Welcome {
        ver: PROTOCOL_VERSION,
        heartbeat_ms: 1000,
        max_buffer_bytes: 1 << 20,
        max_file_bytes: 1 << 30,
    };
    srv.send(&mut s, &welcome, t0);
    let ok = ServerMsg::Res {
        re: *id,
        result: Outcome::Login {
            user_id: "alice".into(),
        },
    };
    srv.send(&mut s, &ok, t0);
    assert_eq!(
        events(&mut s),
        [Event::Login {
            result: Ok("alice".into()),
            cookie: "ck".into()
        }]
    );
    (s, srv)
}

#[test]
fn requests_are_answered_by_their_replies_or_by_the_end_of_the_link() {
    let t0 = Instant::now();
    let (mut s, mut srv) = logged_in(t0);
    s.request(Op::SetDnd { dnd: 2 }, "d", t0).unwrap();
    s.request(Op::GetUserStatus, "g", t0).unwrap();
    let sent = srv.take(&mut s, t0);
    let ids: Vec<u64> = sent
        .iter()
        .map(|m| match m {
            ClientMsg::Req { id, .. } => *id,
            other => panic!("{other:?}"),
        })
        .collect();
    let st = UserStatus::new("bob", 1, 0);
    let list = ServerMsg::Res {
        re: ids[1],
        result: Outcome::Statuses(vec![st.clone()]),
    };
    srv.send(&mut s, &list, t0);
    assert_eq!(
        events(&mut s),
        [Event::GetUserStatus {
            result: Ok(vec![st]),
            cookie: "g".into()
        }]
    );
    // The link fails: the one left gets 207, then line_off; the session wants no link.
    let (gen, _) = s.want();
    s.link_failed(gen, code(CRVIDEOSDK_CONNECTIONLOST), t0);
    assert_eq!(
        events(&mut s),
        [
            Event::SetDndStatus {
                result: Err(code(207)),
                cookie: "d".into()
            },
            Event::LineOff { code: code(207) }
        ]
    );
    assert_eq!(s.want().1, Want::None);
    assert_eq!(s.request(Op::GetMeetings, "", t0), Err(code(12)));
}

#[test]
fn timers_fail_requests_once_ping_and_drop_a_silent_link() {
    let t0 = Instant::now();
    let (mut s, mut srv) = logged_in(t0);
    s.request(Op::GetMeetings, "m", t0).unwrap();
    srv.take(&mut s, t0);
    // The heartbeat (1 s) comes before the request's 30 s.
    let ping_at = s.deadline().unwrap();
    assert_eq!(ping_at, t0 + Duration::from_secs(1));
    s.tick(ping_at);
    let mut wire = Batch::new();
    assert!(s.transmit(&mut wire, ping_at));
    assert_eq!(flat(&wire)[4], Kind::Ping as u8);
    // Nothing heard for three intervals: the link is dead, the request answered with 207.
    s.tick(t0 + Duration::from_secs(3));
    assert_eq!(
        events(&mut s),
        [
            Event::GetMeetings {
                result: Err(code(207)),
                cookie: "m".into()
            },
            Event::LineOff { code: code(207) }
        ]
    );
}

#[test]
fn a_lost_link_is_resumed_on_schedule_with_request_timers_paused() {
    let t0 = Instant::now();
    let (mut s, mut srv) = logged_in(t0);
    // The server says the session may be resumed, for 60 s.
    let resumable = ServerMsg::Resumable {
        addr: String::new(),
        session: "sess".into(),
        secret: "s1".into(),
        window_s: 60,
    };
    srv.send(&mut s, &resumable, t0);
    s.request(Op::GetMeetings, "m", t0).unwrap();
    srv.take(&mut s, t0);
    let (gen, _) = s.want();
    // The link fails: not a logout, a resume — the first attempt at once.
    s.link_failed(gen, code(207), t0);
    assert_eq!(
        events(&mut s),
        [Event::LineReconnecting { code: code(207) }]
    );
    let (gen1, want) = s.want();
    assert_eq!(want, Want::Connect { tls: false });
    assert!(gen1 > gen);
    // It is refused; the next one waits a jittered pause of at most 250 ms.
    s.link_failed(gen1, code(203), t0);
    assert_eq!(s.want().1, Want::None);
    let next = s.deadline().unwrap();
    assert!(next <= t0 + RETRY_BASE, "{:?}", next - t0);
    // Requests are accepted meanwhile; the first one's 30 s pass without a 202.
    s.request(Op::SetDnd { dnd: 1 }, "d", t0).unwrap();
    let later = t0 + Duration::from_secs(40);
    s.tick(next);
    let (gen2, want) = s.want();
    assert_eq!(want, Want::Connect { tls: false });
    s.link_up(gen2, later);
    s.tick(later);
    assert!(
        events(&mut s).is_empty(),
        "no timeout while the link was down"
    );
    // The handshake: hello and resume, unnumbered, with the secret and what we handled.
    let mut wire = Batch::new();
    while s.transmit(&mut wire, later) {}
    let mut dec = Decoder::new(MAX_PAYLOAD_TO_SERVER);
    dec.feed(&flat(&wire));
    let mut hs = Vec::new();
    while let Some(f) = dec.next_frame().unwrap() {
        assert_eq!(f.seq, 0, "only the handshake goes out before the answer");
        hs.push(serde_json::from_slice::<ClientMsg>(f.control().unwrap().0).unwrap());
    }
    let handled = srv.enc.next_seq() - 1;
    assert!(matches!(hs[0], ClientMsg::Hello { .. }));
    assert_eq!(
        hs[1],
        ClientMsg::Resume {
            app_id: "demo".into(),
            session: "sess".into(),
            secret: "s1".into(),
            last: handled,
        }
    );
    // Resumed: the server had none of the two requests; both go again, in order.
    let last = srv.dec.last_seq() - 1;
    srv.dec.continue_after(last);
    let resumed = ServerMsg::Resumed {
        secret: "s2".into(),
        last,
    };
    srv.send(&mut s, &resumed, later);
    assert_eq!(events(&mut s), [Event::LineResumed { offline_ms: 40_000 }]);
    let sent = srv.take(&mut s, later);
    let ids: Vec<u64> = sent
        .iter()
        .filter_map(|m| match m {
            ClientMsg::Req { id, .. } => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(ids.len(), 2, "{sent:?}");
    // The paused timers go on from where they were: 30 s from the requests, plus 40 s away.
    let deadlines = s.st.requests.deadlines();
    assert_eq!(deadlines, [t0 + Duration::from_secs(70); 2]);
    // The heartbeat finds a silent link within 15 s at most.
    assert_eq!(dead_after(Duration::from_secs(10)), Duration::from_secs(15));
}

#[test]
fn a_resume_answered_moved_goes_on_at_once_at_the_new_node() {
    let t0 = Instant::now();
    let (mut s, mut srv) = logged_in(t0);
    let resumable = ServerMsg::Resumable {
        addr: "10.0.0.1:5210".into(),
        session: "sess".into(),
        secret: "s1".into(),
        window_s: 60,
    };
    srv.send(&mut s, &resumable, t0);
    let (gen, _) = s.want();
    s.link_failed(gen, code(207), t0);
    assert_eq!(
        events(&mut s),
        [Event::LineReconnecting { code: code(207) }]
    );
    assert_eq!(s.connect_addr(), Some("10.0.0.1:5210"));
    let (gen1, _) = s.want();
    s.link_up(gen1, t0);
    // The node drains: the session is at another node now, resumed there at once.
    let moved = ServerMsg::Moved {
        addr: "10.0.0.2:5210".into(),
        ws_addr: String::new(),
    };
    srv.send(&mut s, &moved, t0);
    s.link_failed(gen1, code(203), t0);
    s.tick(t0);
    let (gen2, want) = s.want();
    assert_eq!(want, Want::Connect { tls: false });
    assert!(gen2 > gen1);
    assert_eq!(s.connect_addr(), Some("10.0.0.2:5210"));
    assert!(events(&mut s).is_empty(), "nothing for the app meanwhile");
    s.link_up(gen2, t0);
    let mut wire = Batch::new();
    while s.transmit(&mut wire, t0) {}
    let mut dec = Decoder::new(MAX_PAYLOAD_TO_SERVER);
    dec.feed(&flat(&wire));
    let mut hs = Vec::new();
    while let Some(f) = dec.next_frame().unwrap() {
        hs.push(serde_json::from_slice::<ClientMsg>(f.control().unwrap().0).unwrap());
    }
    assert!(
        matches!(&hs[1], ClientMsg::Resume { session, secret, .. } if session == "sess" && secret == "s1"),
        "{hs:?}"
    );
    let last = srv.dec.last_seq();
    srv.dec.continue_after(last);
    let resumed = ServerMsg::Resumed {
        secret: "s2".into(),
        last,
    };
    srv.send(&mut s, &resumed, t0);
    assert_eq!(events(&mut s), [Event::LineResumed { offline_ms: 0 }]);
}

#[test]
fn the_reconnect_pause_doubles_from_250_ms_up_to_5_s_with_full_jitter() {
    let mut env = TestEnv::new();
    for attempt in 1..12u32 {
        let ceiling = (RETRY_BASE * 2u32.pow((attempt - 1).min(8))).min(RETRY_MAX);
        let pauses: Vec<Duration> = (0..200)
            .map(|_| backoff(attempt, env.random_u64()))
            .collect();
        assert!(pauses.iter().all(|p| *p <= ceiling), "attempt {attempt}");
        // Full jitter: spread over the whole range, not bunched at the ceiling.
        assert!(pauses.iter().any(|p| *p < ceiling / 4), "attempt {attempt}");
        assert!(
            pauses.iter().any(|p| *p > ceiling * 3 / 4),
            "attempt {attempt}"
        );
    }
}

#[test]
fn cmds_beyond_the_window_wait_and_a_logout_ends_them_with_12() {
    let t0 = Instant::now();
    let (mut s, mut srv) = logged_in(t0);
    let n = xfer::CMD_WINDOW + 3;
    let tasks: Vec<String> = (0..n)
        .map(|_| s.send_cmd("bob", b"x".to_vec(), t0).unwrap())
        .collect();
    let sent = srv.take(&mut s, t0);
    assert_eq!(sent.len(), xfer::CMD_WINDOW, "the window, no more");
    let done = ServerMsg::CmdDone {
        ns: vec![1],
        code: 0,
    };
    srv.send(&mut s, &done, t0);
    assert_eq!(
        srv.take(&mut s, t0),
        [ClientMsg::Cmd {
            n: xfer::CMD_WINDOW as u64 + 1,
            to: "bob".into()
        }]
    );
    s.logout(t0).unwrap();
    // The logout goes out; the server closes without answering the cmds.
    assert!(matches!(
        srv.take(&mut s, t0)[..],
        [ClientMsg::Req { op: Op::Logout, .. }]
    ));
    let close = ServerMsg::Close {
        code: 206,
        reason: String::new(),
    };
    srv.send(&mut s, &close, t0);
    let evs = events(&mut s);
    assert_eq!(evs.len(), n);
    assert_eq!(
        evs[0],
        Event::CmdSent {
            task_id: tasks[0].clone(),
            result: Ok(())
        }
    );
    for (ev, task) in evs[1..].iter().zip(&tasks[1..]) {
        assert_eq!(
            *ev,
            Event::CmdSent {
                task_id: task.clone(),
                result: Err(code(12))
            }
        );
    }
    assert_eq!(s.want().1, Want::None);
}

#[test]
fn a_logout_overtaking_a_login_still_answers_it_and_a_login_behind_a_logout_waits() {
    let t0 = Instant::now();
    let mut s = session(t0);
    s.login(login_op(), "first", t0).unwrap();
    assert_eq!(s.login(login_op(), "again", t0), Err(code(9)));
    s.logout(t0).unwrap();
    assert_eq!(
        events(&mut s),
        [Event::Login {
            result: Err(code(9)),
            cookie: "first".into()
        }]
    );
    assert_eq!(s.logout(t0), Err(code(12)));
    // Logged in, then out: a login made while the logout completes runs after it.
    let (mut s, mut srv) = logged_in(t0);
    s.logout(t0).unwrap();
    s.login(login_op(), "next", t0).unwrap();
    let sent = srv.take(&mut s, t0);
    let ClientMsg::Req { id, op: Op::Logout } = sent[0] else {
        panic!("{sent:?}")
    };
    let gen = s.want().0;
    srv.send(&mut s, &ServerMsg::reply(id, 0), t0);
    assert!(events(&mut s).is_empty(), "a logout has no event");
    let (next_gen, want) = s.want();
    assert_eq!(want, Want::Connect { tls: false });
    assert!(next_gen > gen, "a new link for the new login");
}

#[test]
fn a_cancel_waiting_on_an_unanswered_offer_ends_with_the_link() {
    let t0 = Instant::now();
    let (mut s, mut srv) = logged_in(t0);
    let task = s.send_buffer("bob", vec![1; 10], t0).unwrap();
    let sent = srv.take(&mut s, t0);
    assert!(matches!(
        sent[..],
        [ClientMsg::Req {
            op: Op::Offer { .. },
            ..
        }]
    ));
    s.cancel_send(&task, t0).unwrap();
    assert!(
        events(&mut s).is_empty(),
        "decided once the offer is answered"
    );
    let (gen, _) = s.want();
    s.link_failed(gen, code(207), t0);
    // The buffer and its cancel both end with the link's code: neither was refused.
    assert_eq!(
        events(&mut s),
        [
            Event::BufferSent {
                task_id: task.clone(),
                result: Err(code(207))
            },
            Event::CancelSend {
                task_id: task,
                result: Err(code(207))
            },
            Event::LineOff { code: code(207) }
        ]
    );
}

#[test]
fn the_deadline_is_the_next_timer_of_the_phase() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let mut s = session(t0);
    assert_eq!(s.deadline(), None, "logged out: no timer");
    s.login(login_op(), "ck", t0).unwrap();
    assert_eq!(s.deadline(), Some(t0 + s.opts().connect_timeout));
    let (gen, _) = s.want();
    let t1 = t0 + ms(100);
    s.link_up(gen, t1);
    assert_eq!(s.deadline(), Some(t1 + s.opts().request_timeout));
    // Logged in (heartbeat 1 s): the ping is next, then the silence that ends the link.
    let (mut s, mut srv) = logged_in(t0);
    assert_eq!(s.deadline(), Some(t0 + ms(1000)));
    let t2 = t0 + ms(600);
    srv.send(
        &mut s,
        &ServerMsg::CmdDone {
            ns: vec![],
            code: 0,
        },
        t2,
    );
    let mut wire = Batch::new();
    s.request(Op::GetMeetings, "m", t2).unwrap();
    assert!(s.transmit(&mut wire, t2));
    assert_eq!(
        s.deadline(),
        Some(t2 + ms(1000)),
        "sending put the ping off"
    );
    s.tick(t2 + ms(1000));
    assert_eq!(s.deadline(), Some(t2 + ms(2000)), "the next ping");
    // Heard nothing since t2: dead at t2 + 3 s.
    s.tick(t2 + ms(2000));
    s.tick(t2 + ms(3000));
    assert!(matches!(events(&mut s)[..], [_, Event::LineOff { .. }]));
    assert_eq!(s.deadline(), None);
}

#[test]
fn a_resume_is_retried_at_the_jittered_time_the_generator_gives() {
    let t0 = Instant::now();
    let (mut s, mut srv) = logged_in(t0);
    let resumable = ServerMsg::Resumable {
        addr: "node-b:7000".into(),
        session: "sess".into(),
        secret: "s1".into(),
        window_s: 60,
    };
    srv.send(&mut s, &resumable, t0);
    assert_eq!(
        s.connect_addr(),
        None,
        "a login goes where the client was pointed"
    );
    let (gen, _) = s.want();
    s.link_failed(gen, code(207), t0);
    assert_eq!(
        s.connect_addr(),
        Some("node-b:7000"),
        "a resume goes to the node"
    );
    // The first attempt at once, out of time after the connect timeout (10 s at most).
    let limit = s.opts().connect_timeout.min(Duration::from_secs(10));
    assert_eq!(s.deadline(), Some(t0 + limit));
    let (gen1, _) = s.want();
    s.link_failed(gen1, code(203), t0);
    // The pause is the one the generator's next value makes.
    let mut twin = TestEnv::new();
    let pause = backoff(1, twin.random_u64());
    assert_eq!(s.deadline(), Some(t0 + pause));
    assert_eq!(s.want().1, Want::None);
    s.tick(t0 + pause);
    assert_eq!(s.want().1, Want::Connect { tls: false });
    // The server's window closes 60 s after the link was lost, whatever the attempts.
    let (gen2, _) = s.want();
    s.link_failed(gen2, code(203), t0 + pause);
    let end = t0 + Duration::from_secs(60);
    let mut now = t0 + pause;
    while let Some(d) = s.deadline() {
        assert!(d <= end, "{:?}", d - t0);
        now = d;
        s.tick(now);
        if let (g, Want::Connect { .. }) = s.want() {
            s.link_failed(g, code(203), now);
        }
    }
    assert_eq!(now, end);
    assert_eq!(
        events(&mut s),
        [
            Event::LineReconnecting { code: code(207) },
            Event::LineOff { code: code(207) }
        ]
    );
}

#[test]
fn a_login_writes_its_log_to_the_sink_it_is_given() {
    let t0 = Instant::now();
    let env = TestEnv::new();
    let log = Arc::clone(&env.log);
    let mut s = Session::new(t0, Box::new(env));
    s.st.opts.log_file = Some(PathBuf::from("in-memory"));
    s.login(login_op(), "ck", t0).unwrap();
    s.logout(t0).unwrap();
    let lines = log.lock().clone();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0], r#"login as app "demo" user "alice""#);
    let abandoned = Event::Login {
        result: Err(code(9)),
        cookie: "ck".into(),
    };
    assert_eq!(lines[1], abandoned.summary());
}

#[test]
fn an_answer_of_the_wrong_kind_is_a_server_fault() {
    let t0 = Instant::now();
    let (mut s, mut srv) = logged_in(t0);
    s.request(Op::GetMeetings, "m", t0).unwrap();
    s.request(Op::SetDnd { dnd: 1 }, "d", t0).unwrap();
    let ids: Vec<u64> = srv
        .take(&mut s, t0)
        .iter()
        .map(|m| match m {
            ClientMsg::Req { id, .. } => *id,
            other => panic!("{other:?}"),
        })
        .collect();
    srv.send(&mut s, &ServerMsg::reply(ids[0], 0), t0);
    let wrong = ServerMsg::Res {
        re: ids[1],
        result: Outcome::Offer { sid: 3 },
    };
    srv.send(&mut s, &wrong, t0);
    assert_eq!(
        events(&mut s),
        [
            Event::GetMeetings {
                result: Err(code(8)),
                cookie: "m".into()
            },
            Event::SetDndStatus {
                result: Err(code(8)),
                cookie: "d".into()
            }
        ]
    );
    // A second login answer is a protocol violation: the link ends.
    let again = ServerMsg::Res {
        re: 99,
        result: Outcome::Login {
            user_id: "alice".into(),
        },
    };
    srv.send(&mut s, &again, t0);
    assert_eq!(events(&mut s), [Event::LineOff { code: code(207) }]);
}

#[path = "transfer_tests.rs"]
mod transfer;
