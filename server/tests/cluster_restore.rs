//! A node that rejoins after it was declared dead (frozen past `node_timeout_ms`) has no
//! sessions to restore: the others must not wait for it to restore any (found by the chaos
//! test, seed 1: every call to an offline user then waited the node timeout and got 8); and a
//! node that restores its sessions last into a Redis that came back empty is waited for.

mod common;

use common::cluster::Cluster;
use common::{assert_call_rang, call_op};
use crvm_proto::ServerMsg;

const TIMEOUT_MS: u64 = 1000;

#[test]
fn a_node_back_from_a_long_freeze_does_not_hold_up_lookups() {
    let c = Cluster::start(2, TIMEOUT_MS, "heartbeat_ms = 60000");
    let mut alice = c.node(0).login("demo", "alice");
    assert_eq!(alice.code(crvm_proto::Op::StartStatusNotify), 0);
    let mut bob = c.node(1).login("demo", "bob");
    c.nodes[1].signal("-STOP");
    // Declared dead by n1 (bob goes offline), then woken: n2 closes bob's session and joins
    // again with none.
    loop {
        match alice.msg() {
            ServerMsg::UserStatus(s) if s.user_id == "bob" && s.user_status == 0 => break,
            ServerMsg::UserStatus(_) => {}
            other => panic!("alice: {other:?}"),
        }
    }
    c.nodes[1].signal("-CONT");
    loop {
        match bob.msg() {
            ServerMsg::Close { code, .. } => break assert_eq!(code, 207),
            ServerMsg::UserStatus(_) => {}
            other => panic!("bob: {other:?}"),
        }
    }
    assert!(
        c.nodes[1].log_says("joining again"),
        "{}",
        c.nodes[1].log_text()
    );
    let joined = || {
        let log = c.nodes[1].log_text();
        let at = log.find("joining again").unwrap();
        log[at..].contains("serving again")
    };
    let deadline = std::time::Instant::now() + common::PATIENCE;
    while !joined() {
        assert!(std::time::Instant::now() < deadline, "n2 did not rejoin");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // A call to a user who is offline is answered so at once: nobody is restoring.
    let started = std::time::Instant::now();
    let call = crvm_proto::Op::Call {
        call_id: "ac".into(),
        callee: "carol".into(),
        meet_obj: String::new(),
        ext: String::new(),
    };
    assert_eq!(alice.code(call), 603);
    println!("answered in {:?}", started.elapsed());
}

/// How often `needle` is in `node`'s log now.
fn count(node: &crvm_testkit::Server, needle: &str) -> usize {
    node.log_text().matches(needle).count()
}

/// Waits (bounded) until `node`'s log holds `needle` more than `before` times.
fn wait_for_log(node: &crvm_testkit::Server, needle: &str, before: usize) {
    let deadline = std::time::Instant::now() + common::PATIENCE;
    while count(node, needle) <= before {
        assert!(
            std::time::Instant::now() < deadline,
            "no new {needle:?}: {}",
            node.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Found by the chaos test (a cmd or file answered 1102 after Redis came back empty): the node
/// that made the new data set first had no sessions of its own, so the data set was not young,
/// and once the nodes that had joined it had restored theirs, a user of a node that had not
/// joined yet was not found. Now any node that saw the wipe makes the data set young, and each
/// node that joins it with sessions to restore makes it young again: the lookup waits for the
/// late node's restore, and the call rings.
#[test]
fn a_user_whose_node_restores_last_is_found_after_redis_comes_back_empty() {
    let mut c = Cluster::start(3, 5000, "heartbeat_ms = 60000");
    let mut alice = c.node(1).login("demo", "alice");
    let mut bob = c.node(2).login("demo", "bob");
    let (joins, checks) = (
        count(&c.nodes[0], "serving again"),
        count(&c.nodes[1], "sessions re-checked"),
    );
    // n1 (no sessions) makes the new data set; n2 restores alice into it; n3 comes last.
    c.nodes[1].signal("-STOP");
    c.nodes[2].signal("-STOP");
    c.redis.shutdown();
    c.redis.restart();
    wait_for_log(&c.nodes[0], "serving again", joins);
    c.nodes[1].signal("-CONT");
    wait_for_log(&c.nodes[1], "sessions re-checked", checks);
    alice.send_req(100, call_op("ab", "bob"));
    c.nodes[2].signal("-CONT");
    assert_call_rang(&mut alice, &mut bob, 100, "ab");
}

/// Found by the chaos test (seed 5): a login that arrived while Redis was coming back empty
/// waited for its node's restore, then named the data set its node had joined before, and was
/// answered 8. It is logged in.
#[test]
fn a_login_made_while_redis_comes_back_empty_waits_and_succeeds() {
    let mut c = Cluster::start(1, 2000, "heartbeat_ms = 60000");
    let _alice = c.node(0).login("demo", "alice");
    c.redis.shutdown();
    let mut bob = c.node(0).connect();
    bob.hello();
    let id = bob.id();
    bob.send_req(id, common::login_op("demo", "demo-secret", "bob", ""));
    c.redis.restart();
    match bob.reply() {
        ServerMsg::Res {
            result: crvm_proto::Outcome::Login { user_id },
            ..
        } => assert_eq!(user_id, "bob"),
        other => panic!("bob's login: {other:?}"),
    }
}
