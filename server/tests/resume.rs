//! Session resumption (docs/API.md §3.6) between real library clients and a real server, with the
//! network broken on purpose by the fault proxy: each test counts every event exactly.

mod common;

use common::*;
use crossbeam_channel::Receiver;
use crvm::core::{Client as Lib, Event, LoginParams};
use crvm_faultproxy::{Mode, Proxy};
use crvm_proto::error::code;
use crvm_proto::{ClientMsg, ServerMsg};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const PATIENCE: Duration = Duration::from_secs(30);

struct User {
    lib: Lib,
    rx: Receiver<Event>,
}

impl User {
    /// A library client of the `demo` tenant logged in as `name` through `addr`.
    fn login(addr: SocketAddr, name: &str, opts: &[(&str, &str)]) -> User {
        let (tx, rx) = crossbeam_channel::unbounded();
        let lib = Lib::new(
            &addr.to_string(),
            Box::new(move |e: &Event| {
                let _ = tx.send(e.clone());
            }),
        )
        .unwrap();
        for (k, v) in opts {
            lib.set_option(k, v).unwrap();
        }
        lib.login(&LoginParams {
            auth_acnt: "demo",
            auth_pswd: "demo-secret",
            priv_acnt: name,
            ..Default::default()
        })
        .unwrap();
        let u = User { lib, rx };
        assert!(
            matches!(u.next(), Event::Login { result: Ok(_), .. }),
            "{name} logs in"
        );
        u
    }

    fn next(&self) -> Event {
        self.rx.recv_timeout(PATIENCE).expect("an event in time")
    }

    /// The next event, which must be `want`.
    fn expect(&self, want: Event) {
        assert_eq!(self.next(), want);
    }

    /// A lost link and its resume: `line_reconnecting(207)`, then `line_resumed`.
    fn expect_resume(&self) {
        self.expect(Event::LineReconnecting { code: code(207) });
        assert!(
            matches!(self.next(), Event::LineResumed { .. }),
            "line_resumed"
        );
    }

    /// Nothing more arrives for a moment.
    fn expect_quiet(&self) {
        if let Ok(e) = self.rx.recv_timeout(Duration::from_millis(300)) {
            panic!("unexpected event {e:?}");
        }
    }
}

fn server(top: &str) -> (TmpDir, Server) {
    let dir = TmpDir::new();
    let s = Server::start(&dir, &config(top));
    (dir, s)
}

/// A server with `top` in its config, and a fault proxy in front of it.
fn proxied(top: &str) -> (TmpDir, Server, Proxy) {
    let (dir, s) = server(top);
    let proxy = Proxy::start(s.addr).unwrap();
    (dir, s, proxy)
}

/// The network goes away: every connection through `proxy` is reset and new ones refused.
fn cut(proxy: &Proxy) {
    proxy.set_mode(Mode::Refuse);
    proxy.reset();
}

#[test]
fn a_connected_call_survives_a_drop_and_hangs_up_after_the_resume() {
    let (_d, s, proxy) = proxied("");
    let alice = User::login(proxy.addr(), "alice", &[]);
    let bob = User::login(s.addr, "bob", &[]);
    let call_id = alice.lib.call("bob", "", "", "c").unwrap();
    alice.expect(Event::Call {
        call_id: call_id.clone(),
        result: Ok(()),
        cookie: "c".into(),
    });
    assert!(matches!(bob.next(), Event::NotifyCallIn { .. }));
    bob.lib.accept_call(&call_id, "", "", "a").unwrap();
    assert!(matches!(
        bob.next(),
        Event::AcceptCall { result: Ok(()), .. }
    ));
    assert!(matches!(alice.next(), Event::NotifyCallAccepted { .. }));

    proxy.reset();
    alice.expect_resume();
    // The call carried on: bob's hang-up reaches alice once, after the resume.
    bob.lib.hungup_call(&call_id, "bye", "h").unwrap();
    assert!(matches!(
        bob.next(),
        Event::HangupCall { result: Ok(()), .. }
    ));
    alice.expect(Event::NotifyCallHungup {
        call_id,
        usr_ext_dat: "bye".into(),
    });
    alice.expect_quiet();
    bob.expect_quiet();
}

#[test]
fn a_ringing_call_keeps_ringing_and_its_timer_fires_on_time_while_the_callee_is_away() {
    let (_d, s, proxy) = proxied("call_timeout_s = 2");
    let alice = User::login(s.addr, "alice", &[]);
    let bob = User::login(proxy.addr(), "bob", &[]);
    let call_id = alice.lib.call("bob", "", "", "c").unwrap();
    let rung = Instant::now();
    assert!(matches!(alice.next(), Event::Call { result: Ok(()), .. }));
    assert!(matches!(bob.next(), Event::NotifyCallIn { .. }));
    // Bob's network goes away while it rings; nobody answers.
    cut(&proxy);
    bob.expect(Event::LineReconnecting { code: code(207) });
    alice.expect(Event::NotifyCallRejected {
        call_id: call_id.clone(),
        reason: code(604),
        usr_ext_dat: String::new(),
    });
    let fired = rung.elapsed();
    assert!(
        fired >= Duration::from_secs(2) && fired < Duration::from_secs(10),
        "{fired:?}"
    );
    // Bob comes back and hears how the call ended, once.
    proxy.set_mode(Mode::Forward);
    assert!(matches!(bob.next(), Event::LineResumed { .. }));
    bob.expect(Event::NotifyCallHungup {
        call_id,
        usr_ext_dat: String::new(),
    });
    bob.expect_quiet();
    alice.expect_quiet();
}

#[test]
fn a_reply_lost_with_the_link_arrives_once_after_the_resume_and_the_callee_is_rung_once() {
    let (_d, s, proxy) = proxied("");
    let alice = User::login(proxy.addr(), "alice", &[]);
    let bob = User::login(s.addr, "bob", &[]);
    // Frames sit in the proxy for a while: the server handles the call while its reply is
    // still on the way, and the link is cut under it.
    proxy.set_delay(Duration::from_millis(300));
    let call_id = alice.lib.call("bob", "", "", "c").unwrap();
    assert!(matches!(bob.next(), Event::NotifyCallIn { .. }));
    proxy.reset();
    proxy.set_delay(Duration::ZERO);
    alice.expect(Event::LineReconnecting { code: code(207) });
    assert!(matches!(alice.next(), Event::LineResumed { .. }));
    alice.expect(Event::Call {
        call_id,
        result: Ok(()),
        cookie: "c".into(),
    });
    alice.expect_quiet();
    bob.expect_quiet();
}

#[test]
fn requests_made_while_reconnects_are_refused_get_their_results_after_the_resume() {
    let (_d, _s, proxy) = proxied("");
    let alice = User::login(proxy.addr(), "alice", &[]);
    cut(&proxy);
    alice.expect(Event::LineReconnecting { code: code(207) });
    // Accepted and queued while the link is down.
    alice.lib.set_dnd_status(1, "dnd").unwrap();
    alice.lib.get_user_status("who").unwrap();
    let task = alice.lib.send_cmd("alice", b"to myself").unwrap();
    // Let several attempts fail.
    let refused = proxy.accepted();
    while proxy.accepted() < refused + 2 {
        std::thread::sleep(Duration::from_millis(20));
    }
    proxy.set_mode(Mode::Forward);
    assert!(matches!(alice.next(), Event::LineResumed { .. }));
    alice.expect(Event::SetDndStatus {
        result: Ok(()),
        cookie: "dnd".into(),
    });
    match alice.next() {
        Event::GetUserStatus {
            result: Ok(list), ..
        } => assert_eq!(list, [st("alice", 1, 1)]),
        other => panic!("{other:?}"),
    }
    alice.expect(Event::CmdSent {
        task_id: task,
        result: Err(code(5)),
    });
    alice.expect_quiet();
}

#[test]
fn cmds_both_ways_through_a_flapping_link_arrive_once_and_in_order() {
    let (_d, s) = server("");
    let pa = Proxy::start(s.addr).unwrap();
    let pb = Proxy::start(s.addr).unwrap();
    let alice = User::login(pa.addr(), "alice", &[]);
    let bob = User::login(pb.addr(), "bob", &[]);
    const N: usize = 1000;
    pa.flap(Some(Duration::from_millis(200)));
    pb.flap(Some(Duration::from_millis(200)));
    let send = |u: &User, to: &str| {
        (0..N)
            .map(|i| u.lib.send_cmd(to, format!("{i}").as_bytes()).unwrap())
            .collect::<Vec<_>>()
    };
    let (mut a_tasks, mut b_tasks) = (send(&alice, "bob"), send(&bob, "alice"));
    let check = |u: &User, tasks: &mut Vec<String>, from: &str| {
        let mut got = 0;
        let (mut drops, mut resumes) = (0, 0);
        tasks.reverse();
        while got < N || !tasks.is_empty() {
            match u.next() {
                Event::NotifyCmdData { from: f, data } => {
                    assert_eq!((f.as_str(), data), (from, format!("{got}").into_bytes()));
                    got += 1;
                }
                Event::CmdSent { task_id, result } => {
                    assert_eq!(result, Ok(()));
                    assert_eq!(Some(task_id), tasks.pop(), "results in order, once each");
                }
                Event::LineReconnecting { .. } => drops += 1,
                Event::LineResumed { .. } => resumes += 1,
                other => panic!("{other:?}"),
            }
        }
        (drops, resumes)
    };
    let (da, ra) = check(&alice, &mut a_tasks, "bob");
    let (db, rb) = check(&bob, &mut b_tasks, "alice");
    pa.flap(None);
    pb.flap(None);
    // Every drop is followed by its resume (one may still be under way).
    assert!(da >= ra && da <= ra + 1 && db >= rb && db <= rb + 1);
    eprintln!("alice: {da} drops, bob: {db} drops");
}

#[test]
fn a_session_not_resumed_within_the_window_ends_once_for_everyone() {
    let (_d, s, proxy) = proxied("resume_window_s = 1");
    let watcher = User::login(s.addr, "watcher", &[]);
    let alice = User::login(proxy.addr(), "alice", &[]);
    let call_id = watcher.lib.call("alice", "", "", "c").unwrap();
    assert!(matches!(watcher.next(), Event::Call { result: Ok(()), .. }));
    assert!(matches!(alice.next(), Event::NotifyCallIn { .. }));
    watcher.lib.start_user_status_notify("w").unwrap();
    assert!(matches!(
        watcher.next(),
        Event::StartUserStatusNotify { result: Ok(()), .. }
    ));
    cut(&proxy);
    alice.expect(Event::LineReconnecting { code: code(207) });
    alice.lib.get_meetings("m").unwrap();
    // The window passes: the outstanding request gets 207, the call ends, then line_off.
    alice.expect(Event::GetMeetings {
        result: Err(code(207)),
        cookie: "m".into(),
    });
    alice.expect(Event::NotifyCallHungup {
        call_id: call_id.clone(),
        usr_ext_dat: String::new(),
    });
    alice.expect(Event::LineOff { code: code(207) });
    // For the others, alice went away once: the ringing call ends with 603, she goes offline.
    watcher.expect(Event::NotifyCallRejected {
        call_id,
        reason: code(603),
        usr_ext_dat: String::new(),
    });
    let mut offline = 0;
    while let Ok(e) = watcher.rx.recv_timeout(Duration::from_millis(500)) {
        match e {
            // Her call ends first (back to 1), then she goes offline: once.
            Event::NotifyUserStatus { status, .. } if status.user_id == "alice" => {
                assert_eq!(offline, 0, "nothing after offline");
                offline += (status.user_status == 0) as usize;
            }
            Event::NotifyUserStatus { .. } => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(offline, 1);
    assert!(s.log_says("not resumed in time"), "{}", s.log_text());
}

#[test]
fn a_session_kicked_while_detached_ends_with_10() {
    let (_d, s, proxy) = proxied("");
    let alice = User::login(proxy.addr(), "alice", &[]);
    cut(&proxy);
    alice.expect(Event::LineReconnecting { code: code(207) });
    let _again = User::login(s.addr, "alice", &[]);
    proxy.set_mode(Mode::Forward);
    alice.expect(Event::LineOff { code: code(10) });
    alice.expect_quiet();
}

#[test]
fn a_server_restarted_while_detached_knows_no_session() {
    let dir = TmpDir::new();
    let mut s = Server::start(&dir, &config(""));
    let proxy = Proxy::start(s.addr).unwrap();
    let alice = User::login(proxy.addr(), "alice", &[]);
    let port = s.addr;
    s.signal("-KILL");
    s.wait();
    alice.expect(Event::LineReconnecting { code: code(207) });
    // The same address again, a new process.
    let listen = port.to_string();
    let config_arg = s.config.to_str().unwrap().to_owned();
    let _s2 = Server::spawn(
        &dir,
        &[
            "--listen",
            &listen,
            "--config",
            &config_arg,
            "--data-dir",
            dir.path("data").to_str().unwrap(),
        ],
        s.config.clone(),
    );
    alice.expect(Event::LineOff { code: code(207) });
}

#[test]
fn reconnect_off_keeps_the_old_behaviour() {
    let (_d, s, proxy) = proxied("");
    let watcher = User::login(s.addr, "watcher", &[]);
    watcher.lib.start_user_status_notify("w").unwrap();
    assert!(matches!(
        watcher.next(),
        Event::StartUserStatusNotify { result: Ok(()), .. }
    ));
    let alice = User::login(proxy.addr(), "alice", &[("reconnect", "off")]);
    assert!(matches!(watcher.next(), Event::NotifyUserStatus { .. }));
    proxy.reset();
    alice.expect(Event::LineOff { code: code(207) });
    // The server did not hold it either.
    match watcher.next() {
        Event::NotifyUserStatus { status, .. } => assert_eq!(status, st("alice", 0, 0)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn network_changed_resumes_at_once_and_needs_a_login() {
    let (_d, s) = server("");
    let alice = User::login(s.addr, "alice", &[]);
    alice.lib.network_changed().unwrap();
    alice.expect_resume();
    alice.lib.set_dnd_status(2, "d").unwrap();
    alice.expect(Event::SetDndStatus {
        result: Ok(()),
        cookie: "d".into(),
    });
    alice.lib.logout().unwrap();
    assert_eq!(alice.lib.network_changed(), Err(code(12)));
}

#[test]
fn a_wrong_or_stale_secret_or_another_tenants_session_is_refused_as_unknown() {
    let (_d, s) = server("");
    // A real session, its ID and secret as the server gave them.
    let mut c = s.connect();
    let (session, secret) = login_resumable(&mut c, "alice");
    let try_resume = |app: &str, session: &str, secret: &str| {
        let mut r = s.connect();
        r.hello();
        r.send(&ClientMsg::Resume {
            app_id: app.into(),
            session: session.into(),
            secret: secret.into(),
            last: 0,
        });
        let answer = r.msg();
        if matches!(answer, ServerMsg::Resumed { .. }) {
            // Speaking after `resumed` shows the new secret arrived (until then the one
            // presented stays good: the answer may have been lost with the link).
            r.send_kind(crvm_proto::Kind::Ping);
            while r.frame().is_some_and(|f| f.kind != crvm_proto::Kind::Pong) {}
        }
        answer
    };
    let refused = ServerMsg::ResumeFailed { code: 207 };
    assert_eq!(try_resume("demo", &session, "0123"), refused);
    assert_eq!(try_resume("acme", &session, &secret), refused);
    assert_eq!(try_resume("demo", "no-such-session", &secret), refused);
    drop(c);
    // A `resumed` lost with its link (the client never speaks on that connection): the secret
    // the client still has is good for the next try.
    {
        let mut r = s.connect();
        r.hello();
        r.send(&ClientMsg::Resume {
            app_id: "demo".into(),
            session: session.clone(),
            secret: secret.clone(),
            last: 0,
        });
        assert!(matches!(r.msg(), ServerMsg::Resumed { .. }));
    }
    // The right secret takes the session over...
    let ServerMsg::Resumed { secret: next, .. } = try_resume("demo", &session, &secret) else {
        panic!("resumed")
    };
    // ...and once the client has spoken with it, the secret it used is stale.
    assert_ne!(next, secret);
    assert_eq!(try_resume("demo", &session, &secret), refused);
    assert!(matches!(
        try_resume("demo", &session, &next),
        ServerMsg::Resumed { .. }
    ));
}

#[test]
fn a_silent_link_is_found_by_the_heartbeat_and_resumed() {
    // Pings every 200 ms: silence is declared after 600 ms on both sides.
    let (_d, _s, proxy) = proxied("heartbeat_ms = 200");
    let alice = User::login(proxy.addr(), "alice", &[]);
    proxy.set_mode(Mode::Blackhole);
    let t0 = Instant::now();
    alice.expect(Event::LineReconnecting { code: code(207) });
    let detected = t0.elapsed();
    assert!(detected < Duration::from_secs(15), "{detected:?}");
    // The network comes back: the attempt that was hanging in it goes through.
    proxy.set_mode(Mode::Forward);
    assert!(matches!(alice.next(), Event::LineResumed { .. }));
    alice.lib.set_dnd_status(1, "d").unwrap();
    alice.expect(Event::SetDndStatus {
        result: Ok(()),
        cookie: "d".into(),
    });
}

/// A random-looking but reproducible byte of a test file at `i`.
fn pattern(i: u64) -> u8 {
    (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 29) as u8
}

#[test]
fn a_gigabyte_survives_twenty_drops_and_each_resends_at_most_a_window() {
    use std::io::{Read, Write};
    let (dir, s, proxy) = proxied("");
    let alice = User::login(proxy.addr(), "alice", &[]);
    let inbox = dir.path("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let bob = User::login(s.addr, "bob", &[("download_dir", inbox.to_str().unwrap())]);
    const SIZE: u64 = 1 << 30;
    let src = dir.path("big.bin");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&src).unwrap());
        let mut block = vec![0u8; 1 << 20];
        for at in (0..SIZE).step_by(block.len()) {
            for (k, b) in block.iter_mut().enumerate() {
                *b = pattern(at + k as u64);
            }
            f.write_all(&block).unwrap();
        }
    }
    // Twenty drops at points drawn anew on every run.
    const DROPS: usize = 20;
    let mut x = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut points: Vec<u64> = (0..DROPS)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % (SIZE - (64 << 20))
        })
        .collect();
    points.sort_unstable();
    eprintln!(
        "drops at (MiB): {:?}",
        points.iter().map(|p| p >> 20).collect::<Vec<_>>()
    );
    let task = alice.lib.send_file("bob", src.to_str().unwrap()).unwrap();
    // One drop at a time: the next once the last one is resumed.
    let (mut drops, mut resumes) = (0, 0);
    let received = loop {
        match alice.next() {
            Event::SendProgress { sent, .. }
                if drops < DROPS && drops == resumes && sent >= points[drops] =>
            {
                proxy.reset();
                drops += 1;
            }
            Event::SendProgress { .. } => {}
            Event::LineReconnecting { .. } => {}
            Event::LineResumed { .. } => resumes += 1,
            Event::FileSent {
                task_id, result, ..
            } => {
                assert_eq!((task_id, result), (task.clone(), Ok(())));
                break bob.next();
            }
            other => panic!("{other:?}"),
        }
    };
    assert_eq!((drops, resumes), (DROPS, DROPS));
    let Event::NotifyFileData { path, .. } = received else {
        panic!("{received:?}")
    };
    // The bytes that arrived are the file's, in order (the library also checked its checksum).
    let mut got = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
    let mut block = vec![0u8; 1 << 20];
    for at in (0..SIZE).step_by(block.len()) {
        got.read_exact(&mut block).unwrap();
        assert!(
            block
                .iter()
                .enumerate()
                .all(|(k, b)| *b == pattern(at + k as u64)),
            "bytes differ in the MiB at {at}"
        );
    }
    assert_eq!(got.read(&mut block).unwrap(), 0, "nothing beyond the size");
    // What crossed the proxy beyond the file: the frames sent again after each drop (at most
    // one flow-control window of the stream each), plus framing and acknowledgements.
    let extra = proxy.bytes().saturating_sub(SIZE);
    let window = crvm_proto::msg::xfer::WINDOW;
    let framing = SIZE / crvm_proto::msg::xfer::CHUNK as u64 * 64;
    assert!(
        extra <= DROPS as u64 * window + framing,
        "{extra} bytes beyond the file"
    );
    eprintln!(
        "{DROPS} drops: {} KiB sent again or framing in all",
        extra / 1024
    );
    bob.expect_quiet();
}

#[test]
fn presence_pushes_for_a_detached_session_merge_into_the_latest() {
    // (Bob's own reconnecting mark, past its grace period, is tests/reconnecting.rs' matter.)
    let (_d, s, proxy) = proxied("reconnecting_after_ms = 0");
    let bob = User::login(proxy.addr(), "bob", &[]);
    bob.lib.start_user_status_notify("w").unwrap();
    assert!(matches!(
        bob.next(),
        Event::StartUserStatusNotify { result: Ok(()), .. }
    ));
    let mut carol = s.login("demo", "carol");
    match bob.next() {
        Event::NotifyUserStatus { status, .. } => assert_eq!(status, st("carol", 1, 0)),
        other => panic!("{other:?}"),
    }
    cut(&proxy);
    bob.expect(Event::LineReconnecting { code: code(207) });
    // For everyone else bob is still there, with the same status.
    assert!(carol.statuses().contains(&st("bob", 1, 0)));
    // A flood of changes while bob is away: far more than a held session could queue apart.
    for dnd in 1..=20_000 {
        assert_eq!(carol.code(crvm_proto::Op::SetDnd { dnd }), 0);
    }
    proxy.set_mode(Mode::Forward);
    assert!(matches!(bob.next(), Event::LineResumed { .. }));
    // What bob sees: carol's changes in order, ending with the last one, merged to a few.
    let mut seen = Vec::new();
    while let Ok(e) = bob.rx.recv_timeout(Duration::from_millis(500)) {
        match e {
            Event::NotifyUserStatus { status, .. } => seen.push(status.dnd_type),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(seen.last(), Some(&20_000));
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order");
    assert!(seen.len() < 100, "{} pushes", seen.len());
}

#[test]
fn logout_and_destroy_during_a_reconnect_end_at_once_and_reach_the_server_when_they_can() {
    // (What the watcher sees of a hold past its grace period is tests/reconnecting.rs' matter.)
    let (_d, s, proxy) = proxied("reconnecting_after_ms = 0");
    let watcher = User::login(s.addr, "watcher", &[]);
    watcher.lib.start_user_status_notify("w").unwrap();
    assert!(matches!(
        watcher.next(),
        Event::StartUserStatusNotify { result: Ok(()), .. }
    ));
    let bobs = Proxy::start(s.addr).unwrap();
    let alice = User::login(proxy.addr(), "alice", &[]);
    let bob = User::login(bobs.addr(), "bob", &[]);
    for _ in 0..2 {
        assert!(matches!(watcher.next(), Event::NotifyUserStatus { .. }));
    }
    // A destroy while the network is gone: it ends for the app within the logout budget, and
    // nothing runs after it.
    cut(&bobs);
    bob.expect(Event::LineReconnecting { code: code(207) });
    let t0 = Instant::now();
    bob.lib.destroy();
    assert!(t0.elapsed() < Duration::from_secs(8), "{:?}", t0.elapsed());
    assert!(bob.rx.try_recv().is_err(), "nothing after destroy");
    cut(&proxy);
    alice.expect(Event::LineReconnecting { code: code(207) });
    // For the app the logout is immediate: what was outstanding ends with 12, nothing else.
    alice.lib.get_meetings("m").unwrap();
    alice.lib.logout().unwrap();
    alice.expect(Event::GetMeetings {
        result: Err(code(12)),
        cookie: "m".into(),
    });
    assert_eq!(alice.lib.logout(), Err(code(12)), "logged out already");
    // Once the network is back, the library tells the server (well within its 60 s hold).
    let t0 = Instant::now();
    proxy.set_mode(Mode::Forward);
    match watcher.next() {
        Event::NotifyUserStatus { status, .. } => assert_eq!(status, st("alice", 0, 0)),
        other => panic!("{other:?}"),
    }
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    alice.expect_quiet();
    assert!(
        s.log_says("logout: app \"demo\" user \"alice\""),
        "{}",
        s.log_text()
    );
}

#[test]
fn a_resume_storm_is_paced_by_the_node_and_everyone_resumes() {
    let (_d, s, proxy) = proxied("max_resumes_per_s = 2");
    let users: Vec<User> = (0..8)
        .map(|i| User::login(proxy.addr(), &format!("u{i}"), &[]))
        .collect();
    proxy.reset();
    for u in &users {
        u.expect_resume();
    }
    // Twice the rate in a burst went through at once; the rest were told to come back.
    assert!(s.log_says("resume deferred"), "{}", s.log_text());
    for u in &users {
        u.lib.get_meetings("m").unwrap();
        assert!(matches!(u.next(), Event::GetMeetings { result: Ok(_), .. }));
    }
}

#[test]
fn a_session_that_would_hold_too_much_ends_at_once_and_cannot_be_resumed() {
    let (_d, s) = server("");
    // Many meetings, so that each list is large.
    let mut owner = s.login("demo", "owner");
    let subject = "x".repeat(50);
    for _ in 0..100 {
        let op = crvm_proto::Op::CreateMeeting {
            subject: subject.clone(),
            with_pswd: true,
        };
        assert!(matches!(
            owner.request(op),
            ServerMsg::Res {
                result: crvm_proto::Outcome::Meeting(_),
                ..
            }
        ));
    }
    assert!(matches!(
        owner.request(crvm_proto::Op::Logout),
        ServerMsg::Res {
            result: crvm_proto::Outcome::Ok,
            ..
        }
    ));
    let mut watcher = s.login("demo", "watcher");
    assert_eq!(watcher.code(crvm_proto::Op::StartStatusNotify), 0);
    // A resumable session asks for the list over and over and stops reading: the answers it is
    // owed exceed what the server holds for a session (queued or unacknowledged, the same
    // bound whether its link is up or it is detached).
    let mut c = s.connect();
    c.hello();
    let mut op = login_op("demo", "demo-secret", "greedy", "");
    if let crvm_proto::Op::Login { resume, .. } = &mut op {
        *resume = true;
    }
    assert!(matches!(
        c.request(op),
        ServerMsg::Res {
            result: crvm_proto::Outcome::Login { .. },
            ..
        }
    ));
    let ServerMsg::Resumable {
        session, secret, ..
    } = c.msg()
    else {
        panic!("resumable")
    };
    assert_eq!(watcher.push(), st("greedy", 1, 0));
    for _ in 0..2000 {
        let id = c.id();
        c.send_req(id, crvm_proto::Op::GetMeetings);
    }
    // Its session ends once, as a disconnect would: offline for the others.
    assert_eq!(watcher.push(), st("greedy", 0, 0));
    let mut r = s.connect();
    r.hello();
    r.send(&ClientMsg::Resume {
        app_id: "demo".into(),
        session,
        secret,
        last: 0,
    });
    assert_eq!(r.msg(), ServerMsg::ResumeFailed { code: 207 });
    assert!(s.log_says("slow consumer"), "{}", s.log_text());
    drop(c);
}

/// A resume that claims fewer frames than it acknowledged (the server has dropped them) is
/// refused without harm: the connection ends, the session stays held, and a right resume
/// takes it afterwards. (The refusal once awaited the connection's writer twice and panicked
/// its task, leaving the connection in the server's books.)
#[test]
fn a_resume_behind_its_acknowledgements_is_refused_cleanly() {
    let dir = TmpDir::new();
    let s = Server::start(&dir, &config(""));
    let mut c = s.connect();
    let (session, secret) = login_resumable(&mut c, "alice");
    // Acknowledge what arrived (a ping carries the ack), then lose the link.
    c.send_kind(crvm_proto::Kind::Ping);
    while c.frame().is_some_and(|f| f.kind != crvm_proto::Kind::Pong) {}
    let last = c.codec.last_seq();
    assert!(last > 0);
    drop(c);
    let resume = |last: u64| {
        let mut r = s.connect();
        r.hello();
        r.send(&ClientMsg::Resume {
            app_id: "demo".into(),
            session: session.clone(),
            secret: secret.clone(),
            last,
        });
        r
    };
    let mut behind = resume(0);
    behind.expect_eof();
    assert!(s.log_says("resume refused (code 6)"), "{}", s.log_text());
    let mut right = resume(last);
    right.codec.received_up_to(last);
    assert!(matches!(right.msg(), ServerMsg::Resumed { .. }));
    assert!(!s.log_text().contains("panicked"), "{}", s.log_text());
}
