//! A cluster of nodes on one Redis behaves as one server (docs/API.md §4.1): what only a cluster has
//! (races between nodes, subscribers on every node, nodes and Redis that fail, shared
//! meetings, node links), each failure handled once — with real processes: a `redis-server`
//! and three `crvm-server` nodes per test. The rules of §3 between users on different nodes are
//! the one-node suites run on a cluster (`calls.rs`, `presence.rs`, `e2e_data.rs`,
//! `faults.rs`: `Topology`).

mod common;

use common::cluster::Cluster;
use common::http;
use common::*;
use crvm_proto::{Op, ServerMsg};

/// Node timeout of these tests (the smallest allowed is 500 ms).
const TIMEOUT_MS: u64 = 1000;

fn cluster() -> Cluster {
    Cluster::start(3, TIMEOUT_MS, "")
}

fn subscribe(c: &mut Client) {
    assert_eq!(c.code(Op::StartStatusNotify), 0);
}

fn call(c: &mut Client, call_id: &str, callee: &str) -> i32 {
    c.code(Op::Call {
        call_id: call_id.into(),
        callee: callee.into(),
        meet_obj: r#"{"ID":7}"#.into(),
        ext: "hi".into(),
    })
}

fn names(list: &[crvm_proto::UserStatus]) -> Vec<(String, i32)> {
    list.iter()
        .map(|s| (s.user_id.clone(), s.user_status))
        .collect()
}

#[test]
fn presence_and_dnd_reach_subscribers_on_every_node() {
    let c = cluster();
    let mut carol = c.node(0).login("demo", "carol");
    let mut dave = c.node(2).login("demo", "dave");
    subscribe(&mut carol);
    subscribe(&mut dave);
    let mut alice = c.node(1).login("demo", "alice");
    assert_eq!(alice.code(Op::SetDnd { dnd: 1 }), 0);
    // Another tenant's user on the same node: never seen by demo's subscribers.
    let _eve = c.node(1).login("acme", "eve");
    for w in [&mut carol, &mut dave] {
        assert_eq!(w.push(), st("alice", 1, 0));
        assert_eq!(w.push(), st("alice", 1, 1));
    }
    assert_eq!(
        names(&dave.statuses()),
        [("alice".into(), 1), ("carol".into(), 1), ("dave".into(), 1)]
    );
    assert_eq!(alice.code(Op::Logout), 0);
    for w in [&mut carol, &mut dave] {
        assert_eq!(w.push(), st("alice", 0, 0));
    }
    assert_eq!(carol.statuses().len(), 2);
    assert_nothing_pending(&mut carol, "carol");
}

#[test]
fn racing_logins_of_one_user_on_two_nodes_leave_exactly_one() {
    let c = cluster();
    for round in 0..10 {
        let (a, b) = (c.node(0).addr, c.node(1).addr);
        let t1 = std::thread::spawn(move || race_login(a));
        let t2 = std::thread::spawn(move || race_login(b));
        let (mut c1, mut c2) = (t1.join().unwrap(), t2.join().unwrap());
        // The one kicked is whichever Redis ran first; the other stays.
        let mut watcher = c.node(2).login("demo", "watcher");
        let online: Vec<_> = watcher
            .statuses()
            .into_iter()
            .filter(|s| s.user_id == "alice")
            .collect();
        assert_eq!(online.len(), 1, "round {round}");
        let (k1, k2) = (kept(&mut c1), kept(&mut c2));
        assert!(k1 != k2, "round {round}: exactly one survives");
        let survivor = if k1 { &mut c1 } else { &mut c2 };
        assert_eq!(survivor.code(Op::Logout), 0);
        drop(watcher);
    }
}

/// Whether `c`'s session is still its user's: a request is answered 0, or the session was
/// kicked (`close{10}`, perhaps after a 12 for the request).
fn kept(c: &mut Client) -> bool {
    let id = c.id();
    c.send_req(id, Op::SetDnd { dnd: 0 });
    loop {
        match c.reply() {
            ServerMsg::Res {
                re,
                result: crvm_proto::Outcome::Ok,
            } if re == id => return true,
            ServerMsg::Res {
                re,
                result: crvm_proto::Outcome::Err(12),
            } if re == id => {}
            ServerMsg::Close { code: 10, .. } => {
                c.expect_eof();
                return false;
            }
            other => panic!("{other:?}"),
        }
    }
}

/// Reads until `close{code}` (passing over whatever came before it), then the end.
fn closed_with(c: &mut Client, code: i32) {
    loop {
        if let ServerMsg::Close { code: got, .. } = c.reply() {
            assert_eq!(got, code);
            c.expect_eof();
            return;
        }
    }
}

fn race_login(addr: std::net::SocketAddr) -> Client {
    let mut c = Client::connect(addr);
    c.hello();
    match c.login("demo", "demo-secret", "alice", "") {
        ServerMsg::Res {
            result: crvm_proto::Outcome::Login { .. },
            ..
        } => c,
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_no_answer_timer_fires_once_even_when_the_callers_node_dies() {
    let mut c = Cluster::start(3, TIMEOUT_MS, "call_timeout_s = 1");
    let mut alice = c.node(0).login("demo", "alice");
    let mut bob = c.node(1).login("demo", "bob");
    assert_eq!(call(&mut alice, "c1", "bob"), 0);
    assert!(matches!(bob.reply(), ServerMsg::CallIn { .. }));
    assert_eq!(
        alice.reply(),
        ServerMsg::CallRejected {
            call_id: "c1".into(),
            reason: 604,
            ext: String::new()
        }
    );
    assert_eq!(
        bob.reply(),
        ServerMsg::CallHungup {
            call_id: "c1".into(),
            ext: String::new()
        }
    );
    // Now the caller's node dies while the call rings: the callee hears of it once (the
    // caller vanished), and the timer, which no longer has a call, does nothing.
    let mut carol = c.node(2).login("demo", "carol");
    assert_eq!(call(&mut carol, "c2", "bob"), 0);
    assert!(matches!(bob.reply(), ServerMsg::CallIn { .. }));
    drop(carol);
    let _ = c.nodes[2].proc.kill();
    let _ = c.nodes[2].proc.wait();
    assert_eq!(
        bob.reply(),
        ServerMsg::CallHungup {
            call_id: "c2".into(),
            ext: String::new()
        }
    );
    // The call ended with its timer: the next thing bob hears is dave's call.
    c.restart_node(2);
    let mut dave = c.node(2).login("demo", "dave");
    assert_eq!(call(&mut dave, "c3", "bob"), 0);
    assert!(matches!(bob.reply(), ServerMsg::CallIn { .. }));
    assert_eq!(
        bob.code(Op::RejectCall {
            call_id: "c3".into(),
            ext: String::new()
        }),
        0
    );
    assert_nothing_pending(&mut bob, "bob");
    assert_eq!(
        names(&bob.statuses()),
        [("alice".into(), 1), ("bob".into(), 1), ("dave".into(), 1)]
    );
    assert_nothing_pending(&mut alice, "alice");
}

#[test]
fn a_killed_node_s_users_go_offline_and_their_calls_end_once() {
    let mut c = cluster();
    let mut watcher = c.node(2).login("demo", "carol");
    subscribe(&mut watcher);
    let mut alice = c.node(0).login("demo", "alice");
    let mut bob = c.node(1).login("demo", "bob");
    assert_eq!(watcher.push(), st("alice", 1, 0));
    assert_eq!(watcher.push(), st("bob", 1, 0));
    assert_eq!(call(&mut alice, "c1", "bob"), 0);
    assert!(matches!(bob.reply(), ServerMsg::CallIn { .. }));
    assert_eq!(
        bob.code(Op::AcceptCall {
            call_id: "c1".into(),
            meet_obj: String::new(),
            ext: String::new()
        }),
        0
    );
    assert!(matches!(alice.reply(), ServerMsg::CallAccepted { .. }));
    assert_eq!(watcher.push(), st("alice", 2, 0));
    assert_eq!(watcher.push(), st("bob", 2, 0));
    c.nodes[0].signal("-KILL");
    let _ = c.nodes[0].wait();
    assert_eq!(
        bob.reply(),
        ServerMsg::CallHungup {
            call_id: "c1".into(),
            ext: String::new()
        }
    );
    assert_eq!(watcher.push(), st("alice", 1, 0));
    assert_eq!(watcher.push(), st("bob", 1, 0));
    assert_eq!(watcher.push(), st("alice", 0, 0));
    assert_eq!(
        names(&bob.statuses()),
        [("bob".into(), 1), ("carol".into(), 1)]
    );
    assert_nothing_pending(&mut bob, "bob");
    assert_nothing_pending(&mut watcher, "carol");
    drop(alice);
}

#[test]
fn a_frozen_node_is_reaped_and_on_waking_closes_its_sessions() {
    let c = cluster();
    let mut watcher = c.node(2).login("demo", "carol");
    subscribe(&mut watcher);
    let mut alice = c.node(0).login("demo", "alice");
    let mut bob = c.node(1).login("demo", "bob");
    assert_eq!(watcher.push(), st("alice", 1, 0));
    assert_eq!(watcher.push(), st("bob", 1, 0));
    assert_eq!(call(&mut alice, "c1", "bob"), 0);
    assert!(matches!(bob.reply(), ServerMsg::CallIn { .. }));
    c.node(0).signal("-STOP");
    // The callee hears the caller vanished, once; the caller's user goes offline.
    assert_eq!(
        bob.reply(),
        ServerMsg::CallHungup {
            call_id: "c1".into(),
            ext: String::new()
        }
    );
    assert_eq!(watcher.push(), st("alice", 2, 0));
    assert_eq!(watcher.push(), st("bob", 2, 0));
    assert_eq!(watcher.push(), st("alice", 1, 0));
    assert_eq!(watcher.push(), st("bob", 1, 0));
    assert_eq!(watcher.push(), st("alice", 0, 0));
    // Alice logs in again elsewhere while her old node sleeps.
    let mut alice2 = c.node(1).login("demo", "alice");
    assert_eq!(watcher.push(), st("alice", 1, 0));
    c.node(0).signal("-CONT");
    // Waking, the old node finds it was declared dead: its session ends, and nothing it still
    // had queued changes the shared state.
    closed_with(&mut alice, 207);
    assert_eq!(alice2.code(Op::SetDnd { dnd: 1 }), 0);
    assert_eq!(watcher.push(), st("alice", 1, 1));
    assert_eq!(
        names(&watcher.statuses()),
        [("alice".into(), 1), ("bob".into(), 1), ("carol".into(), 1)]
    );
    assert_nothing_pending(&mut watcher, "carol");
    // The woken node serves again.
    let _dave = c.node(0).login("demo", "dave");
    assert_eq!(watcher.push(), st("dave", 1, 0));
}

/// Logs `user` in on `node`, expecting the answer `code` (8 while the shared state is down).
fn login_code(node: &Server, user: &str) -> i32 {
    common::login_code(&mut node.connect(), "demo", "demo-secret", user)
}

#[test]
fn redis_gone_closes_every_session_and_refuses_logins_until_it_is_back_empty() {
    let mut c = Cluster::start(2, TIMEOUT_MS, "");
    let mut alice = c.node(0).login("demo", "alice");
    let mut bob = c.node(1).login("demo", "bob");
    assert_eq!(call(&mut alice, "c1", "bob"), 0);
    assert!(matches!(bob.reply(), ServerMsg::CallIn { .. }));
    c.redis.shutdown();
    // Within the node timeout each node closes its own sessions: no user can be logged in
    // twice once another node takes logins again.
    closed_with(&mut alice, 207);
    closed_with(&mut bob, 207);
    assert_eq!(login_code(c.node(0), "carol"), 8);
    c.redis.restart();
    for n in &c.nodes {
        assert!(n.log_says("serving again"), "{}", n.log_text());
    }
    // Nothing of before is left, and nobody is busy.
    let mut alice = c.node(1).login("demo", "alice");
    let mut bob = c.node(0).login("demo", "bob");
    assert_eq!(
        names(&alice.statuses()),
        [("alice".into(), 1), ("bob".into(), 1)]
    );
    assert_eq!(call(&mut alice, "c2", "bob"), 0);
    assert!(matches!(bob.reply(), ServerMsg::CallIn { .. }));
}

#[test]
fn a_paused_redis_longer_than_the_timeout_ends_the_sessions_once() {
    let c = Cluster::start(2, TIMEOUT_MS, "");
    let mut watcher = c.node(1).login("demo", "carol");
    let mut alice = c.node(0).login("demo", "alice");
    let pause = (TIMEOUT_MS * 3).to_string();
    assert_eq!(c.redis.cli(&["CLIENT", "PAUSE", &pause, "ALL"]), "OK");
    closed_with(&mut alice, 207);
    closed_with(&mut watcher, 207);
    for n in &c.nodes {
        assert!(n.log_says("serving again"), "{}", n.log_text());
    }
    let mut watcher = c.node(1).login("demo", "carol");
    assert_eq!(names(&watcher.statuses()), [("carol".into(), 1)]);
    let _alice = c.node(0).login("demo", "alice");
    assert_eq!(
        names(&watcher.statuses()),
        [("alice".into(), 1), ("carol".into(), 1)]
    );
}

#[test]
fn after_redis_lost_its_data_the_nodes_restore_their_live_sessions() {
    let c = cluster();
    let mut watcher = c.node(2).login("demo", "carol");
    subscribe(&mut watcher);
    let mut alice = c.node(0).login("demo", "alice");
    assert_eq!(alice.code(Op::SetDnd { dnd: 3 }), 0);
    let mut bob = c.node(1).login("demo", "bob");
    assert_eq!(watcher.push(), st("alice", 1, 0));
    assert_eq!(watcher.push(), st("alice", 1, 3));
    assert_eq!(watcher.push(), st("bob", 1, 0));
    // A call rings when Redis loses everything.
    assert_eq!(call(&mut alice, "c0", "bob"), 0);
    assert!(matches!(bob.reply(), ServerMsg::CallIn { .. }));
    assert_eq!(watcher.push(), st("alice", 2, 3));
    assert_eq!(watcher.push(), st("bob", 2, 0));
    assert_eq!(c.redis.cli(&["FLUSHALL"]), "OK");
    for n in &c.nodes {
        assert!(n.log_says("serving again"), "{}", n.log_text());
    }
    // Restored, with their DND and their call; the connections never noticed. (A subscriber
    // may hear a status twice: from the restore and from its node's snapshot.)
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 3 {
        let s = watcher.push();
        let expect = match s.user_id.as_str() {
            "alice" => st("alice", 2, 3),
            "bob" => st("bob", 2, 0),
            _ => st("carol", 1, 0),
        };
        assert_eq!(s, expect);
        seen.insert(s.user_id);
    }
    assert_eq!(
        names(&watcher.statuses()),
        [("alice".into(), 2), ("bob".into(), 2), ("carol".into(), 1)]
    );
    // The call goes on, and ends once; nobody stays busy, and a new one rings.
    assert_eq!(
        alice.code(Op::HangupCall {
            call_id: "c0".into(),
            ext: String::new()
        }),
        0
    );
    assert!(matches!(bob.reply(), ServerMsg::CallHungup { call_id, .. } if call_id == "c0"));
    assert_eq!(
        names(&watcher.statuses()),
        [("alice".into(), 1), ("bob".into(), 1), ("carol".into(), 1)]
    );
    assert_eq!(call(&mut alice, "c1", "bob"), 0);
    assert!(matches!(bob.reply(), ServerMsg::CallIn { call_id, .. } if call_id == "c1"));
}

#[test]
fn meetings_are_shared_by_every_node_and_kept_per_tenant() {
    let c = cluster();
    let mut alice = c.node(0).login("demo", "alice");
    let mut bob = c.node(1).login("demo", "bob");
    let mut eve = c.node(2).login("acme", "eve");
    let created = match alice.request(Op::CreateMeeting {
        subject: "weekly".into(),
        with_pswd: true,
    }) {
        ServerMsg::Res {
            result: crvm_proto::Outcome::Meeting(meeting),
            ..
        } => meeting,
        other => panic!("{other:?}"),
    };
    let list = |c: &mut Client| match c.request(Op::GetMeetings) {
        ServerMsg::Res {
            result: crvm_proto::Outcome::Meetings(list),
            ..
        } => list,
        other => panic!("{other:?}"),
    };
    assert_eq!(list(&mut bob), std::slice::from_ref(&created));
    assert!(list(&mut eve).is_empty());
    // Only the creator destroys, from whichever node.
    let destroy = |c: &mut Client, id| c.code(Op::DestroyMeeting { meet_id: id });
    assert_eq!(destroy(&mut bob, created.id), 800);
    assert_eq!(destroy(&mut eve, created.id), 800);
    let mut alice2 = c.node(2).login("demo", "alice");
    alice.expect_close(10);
    assert_eq!(destroy(&mut alice2, created.id), 0);
    assert!(list(&mut bob).is_empty());
}

#[test]
fn a_redis_restart_with_its_data_loses_nothing_still_connected() {
    let mut c = Cluster::start(2, TIMEOUT_MS, "");
    let mut watcher = c.node(1).login("demo", "carol");
    subscribe(&mut watcher);
    let mut alice = c.node(0).login("demo", "alice");
    let mut bob = c.node(1).login("demo", "bob");
    assert_eq!(watcher.push(), st("alice", 1, 0));
    assert_eq!(watcher.push(), st("bob", 1, 0));
    c.redis.shutdown_saving();
    c.redis.restart();
    // Each node notices (its channel's connection broke) and, once Redis answers again,
    // re-checks its sessions there.
    for (n, live) in c.nodes.iter().zip([1, 2]) {
        let line = format!("sessions re-checked: {live} live");
        assert!(n.log_says(&line), "{}", n.log_text());
    }
    // Everyone is still there, and everything works across nodes.
    assert_eq!(alice.code(Op::SetDnd { dnd: 1 }), 0);
    // (The snapshot after the restart may come first.)
    while watcher.push() != st("alice", 1, 1) {}
    assert_eq!(
        names(&watcher.statuses()),
        [("alice".into(), 1), ("bob".into(), 1), ("carol".into(), 1)]
    );
    assert_eq!(call(&mut bob, "c1", "carol"), 0);
    assert!(matches!(watcher.reply(), ServerMsg::CallIn { .. }));
    assert_eq!(
        watcher.code(Op::RejectCall {
            call_id: "c1".into(),
            ext: String::new()
        }),
        0
    );
    assert!(matches!(
        bob.reply(),
        ServerMsg::CallRejected { reason: 606, .. }
    ));
}

#[test]
fn a_node_that_stops_leaves_the_cluster_at_once() {
    let mut c = cluster();
    let _alice = c.node(0).login("demo", "alice");
    let mut bob = c.node(1).login("demo", "bob");
    c.nodes[0].signal("-TERM");
    assert!(c.nodes[0].wait().success());
    // Gone from the live nodes before it exited, not a node timeout later; its user too.
    let live = c.redis.cli(&["ZRANGE", "crvm:beats", "0", "-1"]);
    assert!(!live.lines().any(|l| l == "n1"), "{live}");
    assert_eq!(names(&bob.statuses()), [("bob".into(), 1)]);
}

#[test]
fn a_node_link_refuses_whoever_lacks_the_key() {
    use std::io::{Read, Write};
    let c = Cluster::start(2, TIMEOUT_MS, "");
    let mut alice = c.node(0).login("demo", "alice");
    let mut bob = c.node(1).login("demo", "bob");
    let link = c.redis.cli(&["GET", "crvm:link:n2"]);
    let (addr, key) = link.split_once(' ').expect("addr key");
    // A JSON message's frame (kind 0).
    let frame = |json: &str| {
        let mut f = ((5 + json.len()) as u32).to_be_bytes().to_vec();
        f.push(0);
        f.extend_from_slice(&(json.len() as u32).to_be_bytes());
        f.extend_from_slice(json.as_bytes());
        f
    };
    let closed = |bytes: &[u8]| {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        let _ = s.write_all(bytes);
        let mut buf = [0u8; 16];
        // Closed without a word (a reset counts as closed too).
        assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)));
    };
    let wrong = format!("{}x", &key[..key.len() - 1]);
    closed(&frame(&format!(
        r#"{{"k":"hello","node":"n1","key":"{wrong}"}}"#
    )));
    closed(&[0xff, 0xff, 0xff, 0xff]);
    closed(&frame(r#"{"k":"ended","gen":"1"}"#));
    // The real link still carries a cmd there and its acknowledgement back.
    alice.send_attached(
        &crvm_proto::ClientMsg::Cmd {
            n: 1,
            to: "bob".into(),
        },
        b"hi",
    );
    let (n, from, data) = bob.cmd_in();
    assert_eq!((from.as_str(), data.as_slice()), ("alice", &b"hi"[..]));
    bob.send(&crvm_proto::ClientMsg::CmdAck { upto: n });
    assert_eq!(
        alice.reply(),
        ServerMsg::CmdDone {
            ns: vec![1],
            code: 0
        }
    );
}

#[test]
fn the_monitor_of_each_node_sees_the_cluster_and_its_health_follows_redis() {
    let top = format!(
        "monitor_listen = \"127.0.0.1:0\"\nadmin_token = \"{}\"\n",
        http::TOKEN
    );
    let mut c = Cluster::start(2, TIMEOUT_MS, &top);
    let mon: Vec<String> = c.nodes.iter_mut().map(http::monitor_addr).collect();
    for m in &mon {
        assert_eq!(http::http("GET", m, "/healthz", None).0, 200);
    }
    let mut alice = c.node(0).login("demo", "alice");
    let mut bob = c.node(1).login("demo", "bob");
    assert_eq!(call(&mut alice, "c-mon", "bob"), 0);
    assert!(matches!(bob.reply(), ServerMsg::CallIn { .. }));
    // Either node lists the tenant's calls and sessions, wherever they are.
    for m in &mon {
        let calls = http::get_json(m, "/v1/tenants/demo/calls");
        assert_eq!(calls["calls"][0]["call_id"], "c-mon", "{calls}");
        let text = http::http("GET", m, "/metrics", None).1;
        assert_eq!(
            http::metric(&text, "crvm_calls_active"),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            http::metric(&text, r#"crvm_sessions{tenant="demo"}"#),
            Some(1.0)
        );
    }
    let page = http::get_json(&mon[1], "/v1/tenants/demo/sessions");
    assert_eq!(page["sessions"][0]["user_id"], "alice");
    assert_eq!(page["sessions"][0]["here"], false);
    assert_eq!(page["sessions"][1]["here"], true);
    // A kick asked of node 1 reaches bob on node 2.
    let (status, _) = http::http(
        "POST",
        &mon[0],
        "/v1/tenants/demo/users/bob/kick",
        Some(http::TOKEN),
    );
    assert_eq!(status, 200);
    closed_with(&mut bob, 206);
    assert!(matches!(
        alice.reply(),
        ServerMsg::CallRejected { reason: 603, .. }
    ));
    // Redis paused past the node timeout: the node closes its sessions and is unhealthy until
    // it serves again.
    let pause = (TIMEOUT_MS * 3).to_string();
    assert_eq!(c.redis.cli(&["CLIENT", "PAUSE", &pause, "ALL"]), "OK");
    closed_with(&mut alice, 207);
    assert_eq!(
        http::http("GET", &mon[0], "/healthz", None),
        (503, "unavailable\n".into())
    );
    assert!(
        c.node(0).log_says("serving again"),
        "{}",
        c.node(0).log_text()
    );
    assert_eq!(http::http("GET", &mon[0], "/healthz", None).0, 200);
}
